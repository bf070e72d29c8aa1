// One discovery source kept in step with the cluster: each object's contribution is
// tracked, and whenever the union changes the source's entries are replaced in the
// trust registry (which swaps in a new immutable set). Staleness: after contact with
// the API has been lost for staleAfterSeconds, `keep` holds the last set and `deny`
// empties it and starts over with a fresh list; either way readiness, a log line and
// the stale metric say so.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { DiscoveryConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { TrustRegistry } from '../trust/registry.js';
import { ResilientInformer, statusOf, type ErrorKind, type InformerTiming } from './informer.js';
import { forgetSource, type DiscoveryMetrics } from './metrics.js';
import type { SourceSpec } from './sources.js';

export interface SourceContext {
  registry: TrustRegistry;
  metrics: DiscoveryMetrics;
  logger: Logger;
  timing: InformerTiming;
  settings: Pick<DiscoveryConfig, 'onStale' | 'staleAfterSeconds'>;
}

/** A diff is logged entry by entry up to this size, else as counts (5,000 node CIDRs). */
const LOGGED_DIFF = 20;

export class DiscoverySource {
  private informer: ResilientInformer<KubernetesObject> | undefined;
  private kubeConfig: KubeConfig | undefined;
  private readonly contributions = new Map<string, string[]>();
  private published: readonly string[] | undefined;
  private flushQueued = false;
  private synced = false;
  private stale = false;
  private failingSince: number | undefined;
  private staleTimer: NodeJS.Timeout | undefined;
  private lastError: { kind: ErrorKind; message: string } | undefined;
  /** When the last list or watch event arrived. */
  lastEventAt: number | undefined;
  private readonly log: Logger;

  constructor(
    readonly spec: SourceSpec,
    private readonly ctx: SourceContext,
  ) {
    this.log = ctx.logger.child({ source: spec.name });
  }

  /** Declares the source (readiness waits for it) without contacting the API yet. */
  declare(): void {
    this.ctx.registry.expectSource(this.spec.name);
    this.ctx.metrics.synced.set({ source: this.spec.name }, 0);
    this.ctx.metrics.stale.set({ source: this.spec.name }, 0);
  }

  start(kubeConfig: KubeConfig): void {
    this.kubeConfig = kubeConfig;
    this.informer = this.newInformer(kubeConfig);
    this.informer.start();
  }

  stop(): void {
    this.informer?.stop();
    this.informer = undefined;
    clearTimeout(this.staleTimer);
    this.ctx.registry.removeSource(this.spec.name);
    forgetSource(this.ctx.metrics, this.spec.name);
  }

  /** Why this source makes the sidecar unready, if it does. */
  problems(): string[] {
    const name = this.spec.name;
    if (this.stale) {
      const kept = this.ctx.settings.onStale === 'keep' ? 'last known set kept' : 'trusted set emptied';
      return [
        `${name}: stale, no contact with the Kubernetes API since ${new Date(this.failingSince!).toISOString()} (onStale=${this.ctx.settings.onStale}: ${kept})${this.lastError ? `; last error: ${this.lastError.message}` : ''}`,
      ];
    }
    if (this.failingSince === undefined || !this.lastError) return [];
    if (!this.synced || this.lastError.kind === 'forbidden' || this.lastError.kind === 'unauthorized') {
      return [`${name}: ${this.synced ? '' : 'not synced: '}${this.lastError.message}`];
    }
    return [];
  }

  private newInformer(kc: KubeConfig): ResilientInformer<KubernetesObject> {
    const { spec, ctx } = this;
    const name = spec.name;
    return new ResilientInformer(kc, spec.path, spec.list(kc), spec.labelSelector, ctx.timing, {
      object: (obj, gone) => {
        const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
        const cidrs = gone ? [] : spec.contribution(obj);
        if (cidrs.length === 0) this.contributions.delete(key);
        else this.contributions.set(key, cidrs);
        this.queueFlush();
      },
      synced: () => {
        if (!this.synced) this.log.info({ objects: this.contributions.size }, 'discovery source synced');
        this.synced = true;
        ctx.metrics.synced.set({ source: name }, 1);
        this.queueFlush();
      },
      healthy: (event) => {
        const now = Date.now();
        if (event) this.lastEventAt = now;
        ctx.metrics.lastSync.set({ source: name }, now / 1000);
        this.recovered();
      },
      failing: () => this.failing(),
      restarted: (reason) => ctx.metrics.restarts.inc({ source: name, reason }),
      error: (kind, err) => {
        ctx.metrics.errors.inc({ source: name, kind });
        this.lastError = { kind, message: this.describe(kind, err) };
        const level = kind === 'forbidden' || kind === 'unauthorized' ? 'error' : 'warn';
        this.log[level]({ kind, status: statusOf(err), err: this.lastError.message }, 'discovery source cannot reach the Kubernetes API; retrying');
      },
    });
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // One swap per burst: a list delivers all its objects in one synchronous run.
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    const denied = this.stale && this.ctx.settings.onStale === 'deny';
    const union = new Set<string>();
    if (!denied) for (const cidrs of this.contributions.values()) for (const c of cidrs) union.add(c);
    const next = [...union].sort();
    const before = this.published;
    if (before !== undefined && before.length === next.length && before.every((c, i) => c === next[i])) return;
    // Until the first list completes nothing is published, so a half-read list never counts.
    if (!this.synced) return;
    this.published = next;
    this.ctx.registry.setSource(this.spec.name, { synced: true, cidrs: next });
    const old = new Set(before ?? []);
    const added = next.filter((c) => !old.has(c));
    const kept = new Set(next);
    const removed = [...old].filter((c) => !kept.has(c));
    const diff = added.length + removed.length <= LOGGED_DIFF ? { added, removed } : { addedCount: added.length, removedCount: removed.length };
    this.log.info({ entries: next.length, ...diff }, 'trusted set updated from discovery');
  }

  private failing(): void {
    if (this.failingSince !== undefined) return;
    this.failingSince = Date.now();
    this.staleTimer = setTimeout(() => this.becomeStale(), this.ctx.settings.staleAfterSeconds * 1000);
    this.staleTimer.unref();
  }

  private recovered(): void {
    clearTimeout(this.staleTimer);
    this.failingSince = undefined;
    this.lastError = undefined;
    if (!this.stale) return;
    this.stale = false;
    this.ctx.metrics.stale.set({ source: this.spec.name }, 0);
    this.log.info('discovery source reached the Kubernetes API again; no longer stale');
    this.queueFlush();
  }

  private becomeStale(): void {
    // Staleness is about a set that was once current; before that, readiness already fails.
    if (!this.synced || this.stale) return;
    this.stale = true;
    this.ctx.metrics.stale.set({ source: this.spec.name }, 1);
    const { onStale, staleAfterSeconds } = this.ctx.settings;
    this.log.error(
      { onStale, staleAfterSeconds, entries: this.published?.length ?? 0, lastError: this.lastError?.message },
      onStale === 'keep'
        ? 'discovery source is stale: the Kubernetes API is unreachable; keeping the last known trusted set'
        : 'discovery source is stale: the Kubernetes API is unreachable; its trusted entries are removed until a fresh list',
    );
    if (onStale === 'deny') {
      // The cache is as old as the outage: start over from a fresh list when the API is back.
      this.informer?.stop();
      this.contributions.clear();
      this.informer = this.newInformer(this.kubeConfig!);
      this.informer.start();
    }
    this.flush();
  }

  private describe(kind: ErrorKind, err: unknown): string {
    const said = serverMessage(err);
    switch (kind) {
      case 'forbidden':
        return `forbidden (403) by RBAC: the service account needs ${this.spec.needs}${said}`;
      case 'unauthorized':
        return 'unauthorized (401): the API server refused the service-account token';
      default: {
        const status = statusOf(err);
        const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
        const text = cause?.code ?? cause?.message ?? (err as Error)?.message?.split('\n')[0] ?? String(err);
        return `${kind}${status ? ` (${status})` : ''}: ${text}${said}`;
      }
    }
  }
}

/** The API server's own words (a Status body's message), which the client hands over as text. */
function serverMessage(err: unknown): string {
  let body = (err as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return '';
    }
  }
  const message = (body as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? ` (${message})` : '';
}
