// Trusted proxy sources discovered live from the Kubernetes API. The sidecar creates one
// Discovery: it declares the configured sources at once (so readiness waits for them),
// starts their informers once the listeners are up, follows config reloads source by
// source (server/apply-snapshot.ts calls applyConfig), and adds its readiness problems. Nothing contacts the API unless a source is
// configured.
import type { KubeConfig } from '@kubernetes/client-node';
import type { DiscoveryConfig } from '../config/schema.js';
import type { Runtime } from '../runtime/runtime.js';
import { DEFAULT_TIMING, type InformerTiming } from './informer.js';
import { loadKubeConfig } from './kubeconfig.js';
import { createDiscoveryMetrics, type DiscoveryMetrics } from './metrics.js';
import { DiscoverySource } from './source.js';
import { sourceSpecs } from './sources.js';

export interface DiscoveryOptions {
  /** Where KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT and TPS_SERVICEACCOUNT_DIR are read. */
  env?: NodeJS.ProcessEnv;
  timing?: Partial<InformerTiming>;
}

export class Discovery {
  private readonly sources = new Map<string, DiscoverySource>();
  private kubeConfig: KubeConfig | undefined;
  private configProblem: string | undefined;
  private metrics: DiscoveryMetrics | undefined;
  private started = false;
  private readonly timing: InformerTiming;

  constructor(
    private readonly runtime: Runtime,
    private readonly options: DiscoveryOptions = {},
  ) {
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    runtime.addReadinessCheck(() => this.problems());
    this.applyConfig(runtime.config.trust.discovery);
  }

  start(): void {
    this.started = true;
    for (const s of this.sources.values()) this.startSource(s);
  }

  stop(): void {
    this.started = false;
    for (const s of this.sources.values()) s.stop();
    this.sources.clear();
  }

  /** Sources whose key is unchanged keep running; others are stopped or started. */
  applyConfig(config: DiscoveryConfig): void {
    const settings = { onStale: config.onStale, staleAfterSeconds: config.staleAfterSeconds };
    const wanted = new Map(sourceSpecs(config).map((spec) => [`${spec.key}|${settings.onStale}|${settings.staleAfterSeconds}`, spec]));
    for (const [key, source] of this.sources) {
      if (wanted.has(key)) continue;
      source.stop();
      this.sources.delete(key);
      this.runtime.logger.info({ source: source.spec.name }, 'discovery source removed');
    }
    for (const [key, spec] of wanted) {
      if (this.sources.has(key)) continue;
      this.metrics ??= createDiscoveryMetrics(this.runtime.metrics.registry, () => this.lastEvents());
      const source = new DiscoverySource(spec, {
        registry: this.runtime.trust,
        metrics: this.metrics,
        logger: this.runtime.logger,
        timing: this.timing,
        settings,
      });
      source.declare();
      this.sources.set(key, source);
      if (this.started) this.startSource(source);
    }
  }

  private startSource(source: DiscoverySource): void {
    // Without API access the source stays declared and unsynced: only static CIDRs are
    // trusted and readiness names the problem.
    const kc = this.kube();
    if (kc) source.start(kc);
  }

  /** Loaded once, when the first source starts (the environment does not change). */
  private kube(): KubeConfig | undefined {
    if (this.kubeConfig || this.configProblem !== undefined) return this.kubeConfig;
    try {
      this.kubeConfig = loadKubeConfig(this.options.env ?? process.env);
    } catch (err) {
      this.configProblem = (err as Error).message;
      this.runtime.logger.error({ err: this.configProblem }, 'discovery is configured but the Kubernetes API cannot be used');
    }
    return this.kubeConfig;
  }

  private problems(): string[] {
    if (this.sources.size === 0) return [];
    if (this.configProblem !== undefined) return [`trust discovery cannot reach Kubernetes: ${this.configProblem}`];
    return [...this.sources.values()].flatMap((s) => s.problems());
  }

  private lastEvents(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.sources.values()) if (s.lastEventAt !== undefined) out.set(s.spec.name, s.lastEventAt);
    return out;
  }
}
