// The identity provider's public keys for identity.token, kept fresh by the shell. The
// issuer's OpenID configuration names its jwks_uri (unless jwksUrl is set); the key set is
// fetched from it at start, every refreshSeconds, and sooner (at most every 30 s) when a
// token names a key the set lacks, as after a rotation at the provider. A failed fetch
// keeps the last set until staleAfterSeconds after the last success; then the set is
// dropped and provider tokens are refused (503) until a fetch succeeds: fail closed. Each
// new set reaches the decision as an input of the snapshot (runtime.ts).
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { httpsModule } from '../platform/tls-modules.js';
import type { TokenConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ProviderKey, ProviderKeys } from './token.js';

/** The least time between two fetches a token's unknown key may cause. */
export const UNKNOWN_KEY_COOLDOWN_MS = 30_000;
const FETCH_TIMEOUT_MS = 10_000;
/** A key set or OpenID configuration larger than this is refused (a provider's are a few KiB). */
const MAX_DOCUMENT_BYTES = 1 << 20;

export class ProviderKeySource {
  private timer: NodeJS.Timeout | undefined;
  private lastSuccessAt: number | undefined;
  private lastAttemptAt = 0;
  private lastError: string | undefined;
  private stale = false;
  private fetching: Promise<void> | undefined;
  private stopped = false;
  /** Fetches failed in a row: the next try comes after 1, 2, 4 … s, at most 30 s (or refreshSeconds). */
  private failures = 0;

  constructor(
    private readonly config: TokenConfig,
    private readonly publish: (keys: ProviderKeys | undefined) => void,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    metrics.providerKeys.set(0);
  }

  start(): void {
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** A token named a key the set lacks: fetch again unless one was tried within the cooldown. */
  unknownKey(): void {
    if (Date.now() - this.lastAttemptAt >= UNKNOWN_KEY_COOLDOWN_MS) void this.refresh();
  }

  /** Why provider tokens cannot be checked now, for readiness. */
  problems(): string[] {
    if (this.lastSuccessAt === undefined) return [`identity provider keys not fetched yet${this.lastError ? `: ${this.lastError}` : ''}`];
    if (this.stale)
      return [
        `identity provider keys stale since ${new Date(this.lastSuccessAt + this.config.staleAfterSeconds * 1000).toISOString()}: ${this.lastError ?? ''}`,
      ];
    return [];
  }

  private refresh(): Promise<void> {
    this.fetching ??= this.fetchKeys().finally(() => {
      this.fetching = undefined;
      if (this.stopped) return;
      clearTimeout(this.timer);
      // After a failure, try again sooner than the refresh interval (a provider still starting
      // is found within seconds), backing off, never in a tight loop.
      const refresh = this.config.refreshSeconds * 1000;
      const delay = this.lastError === undefined ? refresh : Math.min(refresh, UNKNOWN_KEY_COOLDOWN_MS, 1000 * 2 ** Math.min(this.failures - 1, 10));
      this.timer = setTimeout(() => void this.refresh(), delay);
      this.timer.unref();
    });
    return this.fetching;
  }

  private async fetchKeys(): Promise<void> {
    this.lastAttemptAt = Date.now();
    // The CA is read at every fetch: a bundle mounted or renewed later is used as it is then.
    try {
      const ca = this.config.caFile ? readCa(this.config.caFile) : undefined;
      const jwksUrl = this.config.jwksUrl || (await this.discoverJwksUrl(ca));
      const set = await getJson(jwksUrl, ca);
      const keys = importKeySet(set);
      if (keys.byKid.size + keys.unnamed.length === 0) throw new Error(`${jwksUrl}: no usable signing key`);
      if (this.stopped) return;
      this.lastSuccessAt = Date.now();
      this.lastError = undefined;
      this.failures = 0;
      this.stale = false;
      this.metrics.providerKeyFetches.inc({ result: 'ok' });
      this.metrics.providerKeys.set(keys.byKid.size + keys.unnamed.length);
      this.publish(keys);
      this.logger.info({ jwksUrl, kids: [...keys.byKid.keys()] }, 'identity provider keys fetched');
    } catch (err) {
      if (this.stopped) return;
      this.lastError = (err as Error).message;
      this.failures++;
      this.metrics.providerKeyFetches.inc({ result: 'error' });
      // Until the first success there are no keys to drop; after it, they go once stale.
      if (this.lastSuccessAt !== undefined && !this.stale && Date.now() >= this.lastSuccessAt + this.config.staleAfterSeconds * 1000) {
        this.stale = true;
        this.metrics.providerKeys.set(0);
        this.publish(undefined);
      }
      this.logger.error({ err: this.lastError, stale: this.stale }, 'cannot fetch the identity provider keys');
    }
  }

  private async discoverJwksUrl(ca: Buffer | undefined): Promise<string> {
    const issuer = this.config.issuer.replace(/\/$/, '');
    const discovery = await getJson(`${issuer}/.well-known/openid-configuration`, ca);
    // The configuration must be the issuer's own (OpenID Connect Discovery 1.0, 4.3).
    if (discovery['issuer'] !== this.config.issuer)
      throw new Error(`the OpenID configuration names issuer ${String(discovery['issuer'])}, not ${this.config.issuer}`);
    const uri = discovery['jwks_uri'];
    if (typeof uri !== 'string' || !URL.canParse(uri)) throw new Error('the OpenID configuration has no jwks_uri');
    return uri;
  }
}

/**
 * One JSON object over HTTP(S): a redirect is an error (the issuer's documents are at the
 * URLs it names), as is any status but 200, a body past MAX_DOCUMENT_BYTES (cut off as it
 * arrives) and no answer within FETCH_TIMEOUT_MS.
 */
function getJson(url: string, ca: Buffer | undefined): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const options = { headers: { accept: 'application/json' }, timeout: FETCH_TIMEOUT_MS, signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), ...(ca && { ca }) };
    const req = (url.startsWith('https:') ? httpsModule() : http).get(url, options, (res) => {
      if (res.statusCode !== 200) {
        res.destroy();
        reject(new Error(`${url}: HTTP ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_DOCUMENT_BYTES) {
          res.destroy();
          reject(new Error(`${url}: over ${MAX_DOCUMENT_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        try {
          const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${url}: not a JSON object`);
          resolve(value as Record<string, unknown>);
        } catch (err) {
          reject(err instanceof SyntaxError ? new Error(`${url}: ${err.message}`) : err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${FETCH_TIMEOUT_MS} ms`)));
    req.on('error', (err) =>
      reject(
        err.name === 'AbortError' || err.name === 'TimeoutError'
          ? new Error(`${url}: no answer within ${FETCH_TIMEOUT_MS} ms`)
          : new Error(`${url}: ${err.message}`),
      ),
    );
  });
}

function readCa(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`identity.token.caFile ${path}: cannot read (${(err as NodeJS.ErrnoException).code})`);
  }
}

/** The signing keys of a JWK Set: public keys only, never a shared secret (`kty: oct`). */
export function importKeySet(set: Record<string, unknown>): ProviderKeys {
  const byKid = new Map<string, ProviderKey>();
  const unnamed: ProviderKey[] = [];
  for (const jwk of Array.isArray(set['keys']) ? (set['keys'] as unknown[]) : []) {
    if (typeof jwk !== 'object' || jwk === null) continue;
    const { kty, use, kid, alg } = jwk as Record<string, unknown>;
    if (kty === 'oct' || (use !== undefined && use !== 'sig')) continue;
    let key;
    try {
      key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch {
      continue;
    }
    const entry = { key, alg: typeof alg === 'string' ? alg : undefined };
    if (typeof kid === 'string') byKid.set(kid, entry);
    else unnamed.push(entry);
  }
  return { byKid, unnamed };
}
