// Starts a real Sidecar in-process on ephemeral loopback ports, with a fresh key folder.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import type { DiscoveryOptions } from '../../src/discovery/discovery.js';
import type { Forwarder } from '../../src/proxy/forward.js';
import { Sidecar } from '../../src/server/sidecar.js';

export interface TestSidecar {
  sidecar: Sidecar;
  config: Config;
  url: string;
  adminUrl: string;
  port: number;
  keysDir: string;
  keys: Map<string, Uint8Array>;
  /** Every log line as parsed JSON. */
  logs: Record<string, unknown>[];
  /** The config as given (before defaults), e.g. to derive a changed file from it. */
  input: ConfigInput;
  /** The watched YAML file, with `{ configFile: true }`. */
  configPath: string | undefined;
  /** Replaces the watched config file atomically (write, then rename), as a ConfigMap update does. */
  writeConfig(config: ConfigInput | string): void;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Write the config to a real YAML file that the sidecar watches (polled every 100 ms). */
  configFile?: boolean;
  /** Where discovery finds the Kubernetes API, and its timing. */
  discovery?: DiscoveryOptions;
  /** The data plane, for the differential tests: the sidecar's own unless given. */
  forwarder?: (upstream: Config['upstream']) => Forwarder;
}

export const TEST_KEY = Buffer.alloc(32, 7);

/** Tests reach the sidecar from loopback. */
export const LOOPBACK_CIDRS = ['127.0.0.0/8', '::1'];

/**
 * Loopback is allowed and listed beside the test's own CIDRs, unless the test sets
 * allowLoopback itself, when it gets exactly the trust it wrote.
 */
export function withLoopback<T extends { allowLoopback?: boolean; cidrs?: string[] }>(trust: T = {} as T): T {
  if (trust.allowLoopback !== undefined) return trust;
  return { ...trust, allowLoopback: true, cidrs: [...LOOPBACK_CIDRS, ...(trust.cidrs ?? [])] };
}

type Overrides = { [K in keyof ConfigInput]?: Partial<NonNullable<ConfigInput[K]>> };

export async function startSidecar(upstreamUrl: string, overrides: Overrides = {}, options: StartOptions = {}): Promise<TestSidecar> {
  const keysDir = mkdtempSync(join(tmpdir(), 'tps-keys-'));
  writeFileSync(join(keysDir, 'k1'), TEST_KEY);
  const input: ConfigInput = {
    ...overrides,
    listen: { host: '127.0.0.1', port: 0, shutdownGraceSeconds: 2, ...overrides.listen },
    admin: { host: '127.0.0.1', port: 0, ...overrides.admin },
    upstream: { url: upstreamUrl, ...overrides.upstream },
    trust: withLoopback(overrides.trust),
    assertion: { keysDir, ...overrides.assertion },
    logging: { level: 'debug', ...overrides.logging },
  } as ConfigInput;
  const config = configSchema.parse(input);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const logger = pino({ level: config.logging.level }, sink);
  const configDir = options.configFile ? mkdtempSync(join(tmpdir(), 'tps-config-')) : undefined;
  const configPath = configDir && join(configDir, 'sidecar.yaml');
  const writeConfig = (next: ConfigInput | string) => {
    if (!configDir || !configPath) throw new Error('startSidecar: writeConfig needs { configFile: true }');
    const staged = join(configDir, '.staged.yaml');
    writeFileSync(staged, typeof next === 'string' ? next : stringify(next));
    renameSync(staged, configPath);
  };
  if (configPath) writeConfig(input);
  const sidecar = new Sidecar(config, {
    logger,
    watchIntervalMs: 100,
    ...(configPath && { configPath }),
    ...(options.discovery && { discovery: options.discovery }),
    ...(options.forwarder && { forwarder: options.forwarder(config.upstream) }),
  });
  const { data, admin } = await sidecar.start();
  return {
    sidecar,
    config,
    url: `http://127.0.0.1:${data.port}`,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    port: data.port,
    keysDir,
    keys: new Map([['k1', TEST_KEY]]),
    logs,
    input,
    configPath,
    writeConfig,
    stop: async () => {
      await sidecar.stop();
      rmSync(keysDir, { recursive: true, force: true });
      if (configDir) rmSync(configDir, { recursive: true, force: true });
    },
  };
}
