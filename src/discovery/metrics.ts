// Discovery metrics, on the sidecar's registry. The set size by source is the core's
// trusted_proxy_trusted_set_size; these say whether each source is current.
import { Counter, Gauge, type Registry } from '../metrics/prom-client.js';

const PREFIX = 'trusted_proxy_discovery_';

export function createDiscoveryMetrics(registry: Registry, lastEventAt: () => ReadonlyMap<string, number>) {
  const registers = [registry];
  return {
    synced: new Gauge({
      name: `${PREFIX}synced`,
      help: '1 once the discovery source has completed its first list, else 0.',
      labelNames: ['source'] as const,
      registers,
    }),
    stale: new Gauge({
      name: `${PREFIX}stale`,
      help: '1 while the source has not reached the Kubernetes API for longer than staleAfterSeconds, else 0.',
      labelNames: ['source'] as const,
      registers,
    }),
    lastSync: new Gauge({
      name: `${PREFIX}last_sync_timestamp_seconds`,
      help: 'Unix time the source last heard from the Kubernetes API (a list, an established watch or an event).',
      labelNames: ['source'] as const,
      registers,
    }),
    lastEventAge: new Gauge({
      name: `${PREFIX}last_event_age_seconds`,
      help: 'Seconds since the source last received a list or watch event (bookmarks included).',
      labelNames: ['source'] as const,
      registers,
      collect() {
        this.reset();
        const now = Date.now();
        for (const [source, at] of lastEventAt()) this.set({ source }, (now - at) / 1000);
      },
    }),
    restarts: new Counter({
      name: `${PREFIX}watch_restarts_total`,
      help: 'Watches reopened, by source and reason (closed, expired: 410 Gone and relist, idle, error).',
      labelNames: ['source', 'reason'] as const,
      registers,
    }),
    errors: new Counter({
      name: `${PREFIX}errors_total`,
      help: 'Failed list or watch requests, by source and kind (unauthorized, forbidden, throttled, server_error, client_error, timeout, tls, network, config).',
      labelNames: ['source', 'kind'] as const,
      registers,
    }),
  };
}

export type DiscoveryMetrics = ReturnType<typeof createDiscoveryMetrics>;

/** Drops a removed source's gauges, so they do not linger with stale values (its counters stay: they are totals). */
export function forgetSource(m: DiscoveryMetrics, source: string): void {
  for (const gauge of [m.synced, m.stale, m.lastSync]) gauge.remove({ source });
}
