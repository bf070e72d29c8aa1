// oauth2-proxy as a comparison path: reverse-proxy mode in front of the same upstream, each
// request carrying a valid session. The session is real: an OpenID provider
// (harness/oidc-provider.ts) on loopback, and a sign-in on its form before measuring.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { flags, oauth2ProxyOidcSettings, oidcClient, providerArgs } from '../harness/oidc-client.js';
import { signIn } from '../harness/oidc-sign-in.js';
import { makeTestCa } from '../harness/test-ca.js';
import type { RunningPath } from './paths.js';
import { freePort, start, tempDir, until, type Proc } from './procs.js';
import { imageEnv } from './sidecar.js';

const OAUTH2_PROXY = resolve('.tools/bin/oauth2-proxy');
const USER = { name: 'alice', password: randomBytes(12).toString('hex'), email: 'alice@example.com', groups: ['staff'] };

/** alice's session cookie on every request. */
export async function startOauth2Proxy(upstreamPort: number): Promise<RunningPath> {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-oauth2-proxy-')));
  const ca = makeTestCa(dir, ['localhost']);
  const [idpPort, listen] = [await freePort(), await freePort()];
  const origin = `http://127.0.0.1:${listen}`;
  const client = oidcClient(`https://localhost:${idpPort}`, ca, `${origin}/oauth2/callback`, 'bench');
  const users = { [USER.name]: { password: USER.password, email: USER.email, groups: USER.groups } };
  const procs: Proc[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await p.stop();
  };
  try {
    const idp = start(process.execPath, providerArgs(dir, client, users, { host: '127.0.0.1', port: idpPort }), { env: imageEnv() });
    procs.push(idp);
    await until('the OpenID provider', () => idp.output().includes('"ready":true'), 30000);
    const proxy = start(
      OAUTH2_PROXY,
      flags({
        ...oauth2ProxyOidcSettings(client),
        'http-address': `127.0.0.1:${listen}`,
        upstream: `http://127.0.0.1:${upstreamPort}`,
        'cookie-secure': 'false',
        'email-domain': '*',
        'skip-provider-button': 'true',
        // As nginx and Caddy here: no line per request.
        'request-logging': 'false',
      }),
    );
    procs.push(proxy);
    await until('oauth2-proxy', async () => (await fetch(`${origin}/ping`).catch(() => undefined))?.status === 200, 30000);
    const cookie = await signIn({ start: `${origin}/`, user: USER.name, password: USER.password, ca: readFileSync(ca.caFile), connectTo: () => '127.0.0.1' });
    return { url: origin, credential: { header: 'Cookie', value: cookie }, pids: () => [proxy.pid], stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
