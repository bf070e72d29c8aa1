// The sidecar's live state: compiled rules, the trusted set, the signing key. Config and
// key changes are applied by building new values and swapping them whole, so a request
// in flight always sees one consistent version.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKeyRing, type KeyRing } from '../assertion/keys.js';
import { AssertionSigner, randomId } from '../assertion/sign.js';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { DecisionContext } from '../decision/decide.js';
import { compileRules, type Rules } from '../decision/rules.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { STATIC_SOURCE, TrustRegistry } from '../trust/registry.js';
import { digest, pollFingerprint, type Poller } from './poll.js';

/** Settings bound when a socket is opened; changing them needs a restart. */
const RESTART_KEYS = ['listen.host', 'listen.port', 'listen.certFile', 'listen.keyFile', 'listen.maxHeaderBytes', 'admin.host', 'admin.port'] as const;

export class Runtime {
  rules: Rules;
  readonly trust = new TrustRegistry();
  private signer: AssertionSigner | undefined;
  private keyRing: KeyRing | undefined;
  private readonly pollers: Poller[] = [];
  private readonly ruleListeners = new Set<(rules: Rules) => void>();
  private readonly readinessChecks: (() => string[])[] = [];

  constructor(
    config: Config,
    readonly logger: Logger,
    readonly metrics: Metrics,
  ) {
    this.rules = compileRules(config);
    this.trust.onChange((set) => {
      metrics.trustedSetSize.reset();
      for (const source of this.trust.sourceNames()) metrics.trustedSetSize.set({ source }, set.sizeBySource.get(source) ?? 0);
    });
    this.applyTrust(config);
    this.reloadKeys();
  }

  get config(): Config {
    return this.rules.config;
  }

  context(nowMs = Date.now()): DecisionContext {
    return { rules: this.rules, trusted: this.trust.current(), signer: this.signer, nowMs, newId: randomId };
  }

  /** Why the sidecar is not ready, or an empty list. */
  readinessProblems(): string[] {
    const problems: string[] = [];
    if (!this.signer) problems.push('no assertion key');
    const unsynced = this.trust.unsyncedSources();
    if (unsynced.length > 0) problems.push(`trust sources not synced: ${unsynced.join(', ')}`);
    for (const check of this.readinessChecks) problems.push(...check());
    return problems;
  }

  /** Adds a check whose problems readiness reports (e.g. a stale discovery source). */
  addReadinessCheck(check: () => string[]): void {
    this.readinessChecks.push(check);
  }

  onRulesChange(listener: (rules: Rules) => void): () => void {
    this.ruleListeners.add(listener);
    return () => this.ruleListeners.delete(listener);
  }

  applyConfig(config: Config): void {
    const before = this.rules.config;
    for (const key of RESTART_KEYS) {
      const [a, b] = key.split('.') as [keyof Config, string];
      const old = (before[a] as Record<string, unknown>)[b];
      const now = (config[a] as Record<string, unknown>)[b];
      if (old !== now) this.logger.warn({ key, old, new: now }, 'config change needs a restart to take effect');
    }
    this.rules = compileRules(config);
    this.logger.level = config.logging.level;
    this.applyTrust(config);
    if (config.assertion.keysDir !== before.assertion.keysDir || config.assertion.activeKeyId !== before.assertion.activeKeyId) {
      this.reloadKeys();
    }
    for (const l of this.ruleListeners) l(this.rules);
  }

  reloadFromFile(path: string): boolean {
    const result = loadConfigFile(path);
    const problems = result.ok ? liveChangeProblems(this.config, result.config) : result.problems;
    if (!result.ok || problems.length > 0) {
      this.metrics.configReloads.inc({ result: 'rejected' });
      this.logger.error({ path, problems }, 'config reload rejected; the previous config stays in force');
      return false;
    }
    this.applyConfig(result.config);
    this.metrics.configReloads.inc({ result: 'applied' });
    this.logger.info({ path }, 'config reloaded');
    return true;
  }

  reloadKeys(): void {
    const { keysDir, activeKeyId } = this.config.assertion;
    const ring = loadKeyRing(keysDir, activeKeyId);
    this.keyRing = ring;
    const kid = ring.activeKeyId;
    this.signer = kid === undefined ? undefined : new AssertionSigner(kid, ring.keys.get(kid)!);
    this.metrics.keysLoaded.set(ring.keys.size);
    if (kid === undefined) {
      this.metrics.keyReloads.inc({ result: 'rejected' });
      this.logger.error({ keysDir, problems: ring.problems }, 'no usable assertion key: requests are refused until one is present');
    } else {
      this.metrics.keyReloads.inc({ result: 'applied' });
      this.logger.info({ keysDir, kid, keys: [...ring.keys.keys()], problems: ring.problems }, 'assertion keys loaded');
    }
  }

  /** Starts watching the config file (when given) and the key folder. */
  watch(configPath: string | undefined, intervalMs = 1000): void {
    if (configPath) {
      this.pollers.push(pollFingerprint(() => fileFingerprint(configPath), intervalMs, () => this.reloadFromFile(configPath)));
    }
    this.pollers.push(
      pollFingerprint(() => dirFingerprint(this.config.assertion.keysDir), intervalMs, () => this.reloadKeys()),
    );
  }

  stop(): void {
    for (const p of this.pollers.splice(0)) p.stop();
  }

  private applyTrust(config: Config): void {
    this.trust.setAllowLoopback(config.trust.allowLoopback);
    this.trust.setSource(STATIC_SOURCE, { synced: true, cidrs: config.trust.cidrs });
  }
}

/** Changes a running sidecar cannot make: refusing them keeps the old config whole. */
function liveChangeProblems(before: Config, after: Config): string[] {
  return new URL(before.upstream.url).protocol === new URL(after.upstream.url).protocol
    ? []
    : ['upstream.url: switching between http and https needs a restart'];
}

function fileFingerprint(path: string): string {
  try {
    return digest([readFileSync(path)]);
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code}`;
  }
}

function dirFingerprint(dir: string): string {
  try {
    const names = readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
    return digest(names.flatMap((n) => [n, safeRead(join(dir, n))]));
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code}`;
  }
}

function safeRead(path: string): Buffer | string {
  try {
    return readFileSync(path);
  } catch (err) {
    return `error:${(err as NodeJS.ErrnoException).code}`;
  }
}
