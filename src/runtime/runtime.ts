// The sidecar's inputs and the snapshot compiled from them. Three things change a running
// sidecar: the config file, the key folder and a discovery source. Each builds a new
// immutable snapshot (snapshot.ts) from the inputs in force and swaps it in whole; then
// the live parts apply it, as server/apply-snapshot.ts lists.
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadKeyRing, publicKeySet, type KeyRing } from '../assertion/keys.js';
import { loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { ProviderKeys } from '../identity/token.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { gatewayEndpoint } from '../gateway/endpoint.js';
import { TrustRegistry } from '../trust/registry.js';
import { digest, pollFingerprint, type Poller } from './poll.js';
import { compileSnapshot, type Snapshot, type SnapshotInputs } from './snapshot.js';

export type SnapshotListener = (previous: Snapshot, next: Snapshot) => void;

export class Runtime {
  /** Discovery sources' trusted ranges; a change compiles a new snapshot. */
  readonly trust = new TrustRegistry();
  private current: Snapshot;
  private readonly pollers: Poller[] = [];
  private readonly swapListeners = new Set<SnapshotListener>();
  private readonly readinessChecks: (() => string[])[] = [];

  constructor(
    config: Config,
    readonly logger: Logger,
    readonly metrics: Metrics,
  ) {
    this.current = compileSnapshot({ config, trusted: this.trust.compile(config.trust), keys: this.loadKeys(config), providerKeys: undefined });
    this.trust.onChange(() => this.swap({ trusted: this.trust.compile(this.config.trust) }));
  }

  /** The snapshot in force: take it once per request and keep it to the end. */
  get snapshot(): Snapshot {
    return this.current;
  }

  get config(): Config {
    return this.current.config;
  }

  /** Why the sidecar is not ready, or an empty list. */
  readinessProblems(): string[] {
    const problems: string[] = [];
    if (!this.current.signer) problems.push('no assertion key');
    const unsynced = this.trust.unsyncedSources();
    if (unsynced.length > 0) problems.push(`trust sources not synced: ${unsynced.join(', ')}`);
    for (const check of this.readinessChecks) problems.push(...check());
    return problems;
  }

  /** Adds a check whose problems readiness reports (e.g. a stale discovery source). */
  addReadinessCheck(check: () => string[]): void {
    this.readinessChecks.push(check);
  }

  /** Called after every swap with the snapshot replaced and the one now in force. */
  onSwap(listener: SnapshotListener): () => void {
    this.swapListeners.add(listener);
    return () => this.swapListeners.delete(listener);
  }

  applyConfig(config: Config): void {
    const before = this.config;
    const { keysDir, activeKeyId, algorithm, jwksFile } = config.assertion;
    const keysMoved =
      keysDir !== before.assertion.keysDir ||
      activeKeyId !== before.assertion.activeKeyId ||
      algorithm !== before.assertion.algorithm ||
      jwksFile !== before.assertion.jwksFile;
    this.swap({ config, trusted: this.trust.compile(config.trust), ...(keysMoved && { keys: this.loadKeys(config) }) });
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
    this.swap({ keys: this.loadKeys(this.config) });
  }

  /** A new set of the identity provider's keys (or none, once stale) from provider-keys.ts. */
  setProviderKeys(providerKeys: ProviderKeys | undefined): void {
    this.swap({ providerKeys });
  }

  /** Starts watching the config file (when given) and the key folder. */
  watch(configPath: string | undefined, intervalMs = 1000): void {
    if (configPath) {
      this.pollers.push(
        pollFingerprint(
          () => fileFingerprint(configPath),
          intervalMs,
          () => this.reloadFromFile(configPath),
        ),
      );
    }
    this.pollers.push(
      pollFingerprint(
        () => dirFingerprint(this.config.assertion.keysDir),
        intervalMs,
        () => this.reloadKeys(),
      ),
    );
  }

  stop(): void {
    for (const p of this.pollers.splice(0)) p.stop();
  }

  private swap(changed: Partial<SnapshotInputs>): void {
    const previous = this.current;
    this.current = compileSnapshot(
      { config: previous.config, trusted: previous.trusted, keys: previous.keys, providerKeys: previous.providerKeys, ...changed },
      previous,
    );
    for (const listener of this.swapListeners) listener(previous, this.current);
  }

  private loadKeys(config: Config): KeyRing {
    const { keysDir, activeKeyId, algorithm, jwksFile } = config.assertion;
    const ring = loadKeyRing(keysDir, activeKeyId, algorithm);
    if (jwksFile) this.writeKeySet(jwksFile, ring);
    const kid = ring.activeKeyId;
    this.metrics.keysLoaded.set(ring.keys.size);
    if (kid === undefined) {
      this.metrics.keyReloads.inc({ result: 'rejected' });
      this.logger.error({ keysDir, problems: ring.problems }, 'no usable assertion key: requests are refused until one is present');
    } else {
      this.metrics.keyReloads.inc({ result: 'applied' });
      this.logger.info({ keysDir, kid, keys: [...ring.keys.keys()], problems: ring.problems }, 'assertion keys loaded');
    }
    return ring;
  }

  /** The public keys as a JWK Set file for the gateway to read, replaced whole (rename) so it never reads half of one. */
  private writeKeySet(path: string, ring: KeyRing): void {
    const temporary = join(dirname(path), `.${Date.now()}-${process.pid}.jwks.tmp`);
    try {
      writeFileSync(temporary, `${JSON.stringify(publicKeySet(ring), null, 2)}\n`, { mode: 0o644 });
      renameSync(temporary, path);
    } catch (err) {
      this.logger.error({ jwksFile: path, err: (err as Error).message }, 'cannot write the JWK Set file');
    }
  }
}

/** Changes a running sidecar cannot make: refusing them keeps the old config whole. */
export function liveChangeProblems(before: Config, after: Config): string[] {
  return gatewayEndpoint(before.upstream.url).secure === gatewayEndpoint(after.upstream.url).secure
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
    const names = readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort();
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
