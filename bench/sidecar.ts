// The sidecar as users run it: the built command with a realistic config (trusted
// loopback, identity and groups headers, scopes by group, signing, forward-auth on).
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { newKeyFile } from '../src/assertion/keys.js';
import type { Algorithm } from '../src/config/schema.js';
import type { ConfigInput } from '../src/config/schema.js';
import { freePort, httpOk, start, tempDir, until, type Proc } from './procs.js';

export const MAIN = new URL('../../../dist/sidecar.js', import.meta.url).pathname;

export interface RunningSidecar extends Proc {
  port: number;
  adminPort: number;
  configPath: string;
}

/** `algorithm`: how assertions are signed (a fixed HS256 key, or a new key pair). */
export async function sidecarConfig(upstreamPort: number, algorithm: Algorithm = 'HS256'): Promise<{ path: string; port: number; adminPort: number }> {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-sidecar-')));
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'bench-1'), algorithm === 'HS256' ? Buffer.alloc(32, 11) : newKeyFile(algorithm));
  const port = await freePort();
  const adminPort = await freePort();
  const config: ConfigInput = {
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    upstream: { url: `http://127.0.0.1:${upstreamPort}` },
    // The WebSocket clients connect from many loopback addresses (more source ports).
    trust: { allowLoopback: true, cidrs: ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] },
    identity: {
      userHeader: 'x-auth-request-user',
      emailHeader: 'x-auth-request-email',
      groupsHeader: 'x-auth-request-groups',
    },
    assertion: { algorithm, keysDir, activeKeyId: 'bench-1', audience: 'openclaw-gateway' },
    gateway: {
      userHeader: 'x-forwarded-user',
      scopesHeader: 'x-openclaw-scopes',
      scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin', 'operator.read', 'operator.write'] } },
    },
    forwardAuth: { enabled: true, path: '/forward-auth' },
    // Every benchmark request is one user's, from up to 100 connections at once: one user's
    // fair share of the pool (64 of 256 by default) would refuse some in a slow spell.
    limits: { identityPoolShare: 1 },
    logging: { level: 'info' },
  };
  const path = join(dir, 'sidecar.yaml');
  writeFileSync(path, stringify(config));
  return { path, port, adminPort };
}

export async function startSidecar(upstreamPort: number, nodeArgs: readonly string[] = [], algorithm: Algorithm = 'HS256'): Promise<RunningSidecar> {
  const { path, port, adminPort } = await sidecarConfig(upstreamPort, algorithm);
  const proc = start(process.execPath, [...nodeArgs, MAIN, 'serve', '--config', path], { env: imageEnv() });
  await until('sidecar ready', () => httpOk(`http://127.0.0.1:${adminPort}/readyz`), 15000, 10).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.output()}`);
  });
  return { ...proc, port, adminPort, configPath: path };
}

const DOCKERFILE = new URL('../../../Dockerfile', import.meta.url).pathname;

/**
 * The environment the image gives Node (the ENV lines of the Dockerfile's last stage, one
 * pair each), over the runner's, without the runner's NODE_OPTIONS (vm modules for jest):
 * every Node process of the benchmark runs as the sidecar's image runs it.
 */
export function imageEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const lastStage = readFileSync(DOCKERFILE, 'utf8')
    .split(/^FROM /m)
    .pop()!;
  for (const [, name, value] of lastStage.matchAll(/^ENV ([A-Za-z_][A-Za-z0-9_]*)=(\S+)$/gm)) env[name!] = value;
  return env;
}
