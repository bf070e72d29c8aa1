// Prometheus metrics. The sidecar's own start with `trusted_proxy_` (docs/metrics.md lists
// them); the process and Node.js ones keep their standard names (`process_*`, `nodejs_*`),
// which generic dashboards look for. Label values are bounded sets (reason codes,
// protected names, status classes).
import type { Server } from 'node:net';
import { promisify } from 'node:util';
import { openDescriptors } from './descriptors.js';
import { PlainHistogram } from './histogram.js';
import { Counter, Gauge, Registry, collectDefaultMetrics } from './prom-client.js';

const PREFIX = 'trusted_proxy_';
/**
 * prom-client defaults that walk every handle, request or descriptor of the process on the
 * event loop at each scrape: with thousands of connections open, a scrape held up every
 * request for milliseconds. The open descriptors are counted here instead (descriptors.ts),
 * and `connections_open` says per port what the handle counts said of connections. (The
 * `*_total` ones are gauges, which promtool's lint rejects besides.)
 */
const DEFAULTS_WALKING_EVERY_HANDLE = [
  'process_open_fds',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_requests',
  'nodejs_active_requests_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

export function createMetrics(version: string) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of DEFAULTS_WALKING_EVERY_HANDLE) registry.removeSingleMetric(name);
  const registers = [registry];
  // Counts the hot path keeps as plain numbers (see `batched`), handed over when read.
  const pending: BatchedCount[] = [];
  const collect = () => {
    for (const count of pending) count.flush();
  };
  // Read at scrape time from whatever the handler registers, so the hot path sets nothing.
  let slots: () => { busy: number; queued: number } = () => ({ busy: 0, queued: 0 });
  const listeners = new Map<Port, Server>();

  const m = {
    registry,
    decisions: new Counter({
      name: `${PREFIX}decisions_total`,
      help: 'Access decisions by mode, result (allowed/refused) and reason code.',
      labelNames: ['mode', 'result', 'reason'] as const,
      registers,
      collect,
    }),
    decisionSeconds: new PlainHistogram({
      name: `${PREFIX}decision_duration_seconds`,
      help: 'Time to decide on one request, from headers parsed to assertion signed.',
      labelName: 'mode',
      buckets: [0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005],
      registers,
    }),
    headersStripped: new Counter({
      name: `${PREFIX}headers_stripped_total`,
      help: 'Inbound header lines removed, by the protected name (or hop-by-hop rule) that matched.',
      labelNames: ['header'] as const,
      registers,
      collect,
    }),
    assertionsSigned: new Counter({
      name: `${PREFIX}assertions_signed_total`,
      help: 'Identity assertions signed, by key id.',
      labelNames: ['kid'] as const,
      registers,
      collect,
    }),
    upstreamResponses: new Counter({
      name: `${PREFIX}upstream_responses_total`,
      help: 'Responses from the gateway by status class (2xx, 3xx, 4xx, 5xx, 101).',
      labelNames: ['class'] as const,
      registers,
      collect,
    }),
    upstreamErrors: new Counter({
      name: `${PREFIX}upstream_errors_total`,
      help: 'Failed exchanges with the gateway by kind (refused, reset, timeout, bad_response, bad_request, other).',
      labelNames: ['kind'] as const,
      registers,
    }),
    upstreamSeconds: new PlainHistogram({
      name: `${PREFIX}upstream_duration_seconds`,
      help: 'Time from forwarding a request to the gateway to its response headers.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    limitRefusals: new Counter({
      name: `${PREFIX}limit_refusals_total`,
      help: 'Allowed requests and WebSockets refused by a limit (per-identity, queue, body), by reason code.',
      labelNames: ['reason'] as const,
      registers,
    }),
    upstreamInFlight: new Gauge({
      name: `${PREFIX}upstream_in_flight`,
      help: 'Requests at the gateway, each holding one of upstream.maxSockets slots.',
      registers,
      collect() {
        this.set(slots().busy);
      },
    }),
    upstreamQueued: new Gauge({
      name: `${PREFIX}upstream_queued`,
      help: 'Requests waiting for a free slot at the gateway.',
      registers,
      collect() {
        this.set(slots().queued);
      },
    }),
    connectionsStalled: new Counter({
      name: `${PREFIX}connections_stalled_total`,
      help: 'Client connections closed because the client stopped reading what the sidecar wrote.',
      registers,
    }),
    connectionsOpen: new Gauge({
      name: `${PREFIX}connections_open`,
      help: 'Client connections open, by port (data, admin).',
      labelNames: ['port'] as const,
      registers,
      async collect() {
        for (const [port, server] of listeners) this.set({ port }, await promisify(server.getConnections.bind(server))());
      },
    }),
    connectionsMax: new Gauge({
      name: `${PREFIX}connections_max`,
      help: 'Client connections a port holds at most; past it new ones are closed at accept (listen.maxConnections, or the limit derived when it is 0).',
      labelNames: ['port'] as const,
      registers,
      collect() {
        for (const [port, server] of listeners) this.set({ port }, server.maxConnections);
      },
    }),
    connectionsDropped: new Counter({
      name: `${PREFIX}connections_dropped_total`,
      help: 'Connections closed at accept, unanswered, by port and reason: the port held its maximum (max_connections), peers refused by address held listen.maxUntrustedConnections (untrusted_limit), one address held its share of the admin port (address_limit).',
      labelNames: ['port', 'reason'] as const,
      registers,
    }),
    websocketsOpen: new Gauge({
      name: `${PREFIX}websockets_open`,
      help: 'WebSocket connections currently proxied.',
      registers,
    }),
    websocketsTotal: new Counter({
      name: `${PREFIX}websockets_total`,
      help: 'WebSocket connections proxied since start.',
      registers,
    }),
    websocketsClosed: new Counter({
      name: `${PREFIX}websockets_closed_by_sidecar_total`,
      help: 'WebSockets the sidecar closed, by reason (policy, lifetime, shutdown).',
      labelNames: ['reason'] as const,
      registers,
    }),
    configReloads: new Counter({
      name: `${PREFIX}config_reloads_total`,
      help: 'Config file reloads by result (applied, rejected).',
      labelNames: ['result'] as const,
      registers,
    }),
    keyReloads: new Counter({
      name: `${PREFIX}key_reloads_total`,
      help: 'Key folder reloads by result (applied, rejected).',
      labelNames: ['result'] as const,
      registers,
    }),
    providerKeyFetches: new Counter({
      name: `${PREFIX}provider_key_fetches_total`,
      help: "Fetches of the identity provider's key set (identity.token), by result (ok, error).",
      labelNames: ['result'] as const,
      registers,
    }),
    providerKeys: new Gauge({
      name: `${PREFIX}provider_keys`,
      help: "The identity provider's keys in force; 0 while none are (provider tokens are then refused with 503).",
      registers,
    }),
    keysLoaded: new Gauge({
      name: `${PREFIX}assertion_keys_loaded`,
      help: 'Valid assertion keys loaded; 0 means nothing is signed and requests are refused.',
      registers,
    }),
    trustedSetSize: new Gauge({
      name: `${PREFIX}trusted_set_size`,
      help: 'Trusted proxy entries (addresses or CIDRs) by source.',
      labelNames: ['source'] as const,
      registers,
    }),
    logLinesHeld: new Counter({
      name: `${PREFIX}log_lines_held_back_total`,
      help: 'Refusal log lines not written because their peer, or all peers together, were over the line budget.',
      labelNames: ['line'] as const,
      registers,
    }),
    meshInbound: new Gauge({
      name: `${PREFIX}mesh_inbound`,
      help: '1 for the loopback address every recent data-port connection came from: a service mesh proxy in the pod.',
      labelNames: ['address'] as const,
      registers,
    }),
    ready: new Gauge({
      name: `${PREFIX}ready`,
      help: '1 when the sidecar is ready (keys, trusted set, upstream), else 0.',
      registers,
    }),
    buildInfo: new Gauge({
      name: `${PREFIX}build_info`,
      help: 'Build information; always 1.',
      labelNames: ['version', 'node_version'] as const,
      registers,
    }),
  };
  m.buildInfo.set({ version, node_version: process.version }, 1);
  // Only Linux has /proc/self/fd, as with prom-client's own collector.
  if (process.platform === 'linux') {
    new Gauge({
      name: 'process_open_fds',
      help: 'Number of open file descriptors.',
      registers,
      async collect() {
        this.set(await openDescriptors());
      },
    });
  }
  return {
    ...m,
    /** Where the upstream gauges read the slots' permits from. */
    observeUpstreamSlots(read: () => { busy: number; queued: number }): void {
      slots = read;
    },
    /** The listener whose connections `connections_open` counts, and `connections_max` bounds, for `port`. */
    observeConnections(port: Port, server: Server): void {
      listeners.set(port, server);
    },
    /**
     * A count for the hot path, of one of the counters above with fixed label values:
     * its increments add to a plain number, and prom-client gets the sum whenever the
     * registry is read (prom-client hashes and checks the labels on every increment,
     * even a child's, and an allowed request counts up to ten things).
     */
    batched(counter: Counter<string>, labels: Record<string, string>): BatchedCount {
      const count = new BatchedCount(counter, labels);
      pending.push(count);
      return count;
    },
  };
}

export class BatchedCount {
  private n = 0;

  constructor(
    private readonly counter: Counter<string>,
    private readonly labels: Record<string, string>,
  ) {}

  inc(): void {
    this.n++;
  }

  flush(): void {
    if (this.n === 0) return;
    this.counter.inc(this.labels, this.n);
    this.n = 0;
  }
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The sidecar's two listeners, as the `port` label names them. */
export type Port = 'data' | 'admin';

/**
 * One value per key, made on first use: the hot path keeps its metric children and
 * batched counts this way instead of building label objects per request. Keys are bounded
 * sets (modes, protected names, key ids, status codes).
 */
export function perKey<K, V>(make: (key: K) => V): (key: K) => V {
  const made = new Map<K, V>();
  return (key) => {
    let value = made.get(key);
    if (value === undefined) made.set(key, (value = make(key)));
    return value;
  };
}

export function statusClass(status: number): string {
  return status === 101 ? '101' : `${Math.floor(status / 100)}xx`;
}
