// Starts a real Sidecar in-process on ephemeral loopback ports, with a fresh key folder.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
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
  stop(): Promise<void>;
}

export const TEST_KEY = Buffer.alloc(32, 7);

type Overrides = { [K in keyof ConfigInput]?: Partial<NonNullable<ConfigInput[K]>> };

export async function startSidecar(upstreamUrl: string, overrides: Overrides = {}): Promise<TestSidecar> {
  const keysDir = mkdtempSync(join(tmpdir(), 'tps-keys-'));
  writeFileSync(join(keysDir, 'k1'), TEST_KEY);
  const input: ConfigInput = {
    ...overrides,
    listen: { host: '127.0.0.1', port: 0, shutdownGraceSeconds: 2, ...overrides.listen },
    admin: { host: '127.0.0.1', port: 0, ...overrides.admin },
    upstream: { url: upstreamUrl, ...overrides.upstream },
    trust: { allowLoopback: true, ...overrides.trust },
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
  const sidecar = new Sidecar(config, { logger, watchIntervalMs: 100 });
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
    stop: async () => {
      await sidecar.stop();
      rmSync(keysDir, { recursive: true, force: true });
    },
  };
}
