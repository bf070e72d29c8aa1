// The sidecar as users run it: the built command with a realistic config (trusted
// loopback, identity and groups headers, scopes by group, signing, forward-auth on).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigInput } from '../src/config/schema.js';
import { freePort, httpOk, start, tempDir, until, type Proc } from './procs.js';

export const MAIN = new URL('../../../dist/sidecar.js', import.meta.url).pathname;

export interface RunningSidecar extends Proc {
  port: number;
  adminPort: number;
  configPath: string;
}

export async function sidecarConfig(upstreamPort: number): Promise<{ path: string; port: number; adminPort: number }> {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-sidecar-')));
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'bench-1'), Buffer.alloc(32, 11));
  const port = await freePort();
  const adminPort = await freePort();
  const config: ConfigInput = {
    listen: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: adminPort },
    upstream: { url: `http://127.0.0.1:${upstreamPort}` },
    trust: { allowLoopback: true, cidrs: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] },
    identity: {
      userHeader: 'x-auth-request-user',
      emailHeader: 'x-auth-request-email',
      groupsHeader: 'x-auth-request-groups',
    },
    assertion: { keysDir, activeKeyId: 'bench-1', audience: 'openclaw-gateway' },
    gateway: {
      userHeader: 'x-forwarded-user',
      scopesHeader: 'x-openclaw-scopes',
      scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin', 'operator.read', 'operator.write'] } },
    },
    forwardAuth: { enabled: true, path: '/forward-auth' },
    logging: { level: 'info' },
  };
  const path = join(dir, 'sidecar.yaml');
  writeFileSync(path, stringify(config));
  return { path, port, adminPort };
}

export async function startSidecar(upstreamPort: number, nodeArgs: readonly string[] = []): Promise<RunningSidecar> {
  const { path, port, adminPort } = await sidecarConfig(upstreamPort);
  const proc = start(process.execPath, [...nodeArgs, MAIN, 'serve', '--config', path], { env: cleanEnv() });
  await until('sidecar ready', () => httpOk(`http://127.0.0.1:${adminPort}/readyz`), 15000, 10).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.output()}`);
  });
  return { ...proc, port, adminPort, configPath: path };
}

/** The runner's NODE_OPTIONS (vm modules for jest) are no part of the sidecar's. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}
