// identity.token against the real parts: an OpenID provider (oidc-provider, with its login
// form) issues real ID tokens, oauth2-proxy signs alice in and passes her token along
// (--pass-authorization-header) to the sidecar, which fetches the provider's keys through
// its OpenID configuration and takes the identity from the verified token. A trusted
// address that names another user, with or without alice's token, is refused. Then the
// key set's freshness: a provider that stops answering leaves the last keys in force until
// staleAfterSeconds, then every provider token is refused (503) until it is back.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { exportJWK, SignJWT } from 'jose';
import { verifyAssertion } from '../../src/assertion/verify.js';
import { startJsonProcess, stopChild, waitForPort, type JsonProcess } from '../support/front-proxies.js';
import { sample, scrape } from '../support/metrics.js';
import type { Host } from '../../harness/netns.js';
import { flags, oauth2ProxyOidcSettings, oidcClient, providerArgs } from '../../harness/oidc-client.js';
import { signIn } from '../../harness/oidc-sign-in.js';
import { freePort } from '../../harness/ports.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { makeTestCa } from '../../harness/test-ca.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const OAUTH2_PROXY = resolve('.tools/bin/oauth2-proxy');
const ALICE = { name: 'alice', password: 'correct horse battery staple', email: 'alice@example.com', groups: ['staff'] };

/** The test's own machine as a Host: processes on loopback, without the runner's NODE_OPTIONS. */
const loopback: Host = {
  name: 'loopback',
  address: '127.0.0.1',
  exec: () => {
    throw new Error('not used');
  },
  spawn: (cmd, args, opts = {}) => spawn(cmd, args, { ...opts, env: { ...process.env, NODE_OPTIONS: '' } }),
};

describe('through oauth2-proxy, with a real OpenID provider', () => {
  let dir: string;
  let upstream: RecordingUpstream;
  let idp: JsonProcess;
  let proxy: ReturnType<typeof spawn>;
  let sc: TestSidecar;
  let origin: string;
  let cookie: string;
  let issuer: string;
  let tap: http.Server;
  const tokens: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tps-provider-token-'));
    const ca = makeTestCa(dir, ['localhost']);
    const [idpPort, proxyPort] = [await freePort(), await freePort()];
    origin = `http://127.0.0.1:${proxyPort}`;
    const client = oidcClient(`https://localhost:${idpPort}`, ca, `${origin}/oauth2/callback`);
    issuer = client.issuer;
    idp = await startJsonProcess(loopback, process.execPath, providerArgs(dir, client, { [ALICE.name]: ALICE }, { host: '127.0.0.1', port: idpPort }), 30_000);
    upstream = await startRecordingUpstream();
    sc = await startSidecar(upstream.url, {
      identity: {
        userHeader: 'x-forwarded-email',
        groupsHeader: 'x-forwarded-groups',
        token: { mode: 'require', issuer: client.issuer, audiences: [client.id], caFile: ca.caFile },
      },
    });
    await waitFor(async () => (await fetch(`${sc.adminUrl}/readyz`)).status === 200, 'the provider keys fetched', 15_000);
    // Between oauth2-proxy and the sidecar, a tap that notes the token it passes on.
    tap = http.createServer((req, res) => {
      tokens.push(String(req.headers.authorization ?? ''));
      const onward = http.request({ host: '127.0.0.1', port: sc.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(onward);
    });
    await new Promise<void>((r) => tap.listen(0, '127.0.0.1', r));
    proxy = spawn(
      OAUTH2_PROXY,
      flags({
        ...oauth2ProxyOidcSettings(client),
        'http-address': `127.0.0.1:${proxyPort}`,
        upstream: `http://127.0.0.1:${(tap.address() as AddressInfo).port}`,
        'cookie-secure': 'false',
        'email-domain': '*',
        'skip-provider-button': 'true',
        'pass-authorization-header': 'true',
        // The groups claim is in the ID token only when its scope is asked for (docs/install.md).
        scope: 'openid email profile groups',
        'request-logging': 'false',
      }),
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let proxyOutput = '';
    proxy.stderr!.on('data', (c: Buffer) => (proxyOutput = (proxyOutput + c.toString()).slice(-10_000)));
    await waitForPort('127.0.0.1', proxyPort, proxy, () => proxyOutput, 20_000);
    cookie = await signIn({ start: `${origin}/`, user: ALICE.name, password: ALICE.password, ca: readFileSync(ca.caFile), connectTo: () => '127.0.0.1' });
  }, 90_000);
  afterAll(async () => {
    if (proxy) await stopChild(proxy);
    await sc?.stop();
    if (tap) await new Promise((r) => tap.close(r));
    await idp?.stop();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Alice's ID token as oauth2-proxy last sent it on (the gateway never gets it). */
  const lastToken = () => tokens.at(-1)!.replace(/^Bearer /, '');

  test('alice, signed in, reaches the gateway as the verified token names her', async () => {
    const res = await fetch(`${origin}/api/status`, { headers: { cookie } });
    expect(res.status).toBe(200);
    const assertion = upstream.valuesOf(upstream.received.at(-1)!, 'x-trusted-proxy-assertion')[0]!;
    const claims = await verifyAssertion(assertion, { keys: sc.keys });
    expect([claims.sub, claims.groups]).toEqual(['alice@example.com', ['staff']]);
    const scraped = await scrape(sc.adminUrl);
    expect(sample(scraped, 'trusted_proxy_provider_key_fetches_total', { result: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(scraped, 'trusted_proxy_provider_keys', {})).toBe(1);
    expect(lastToken().split('.')).toHaveLength(3);
    // The token was the sidecar's to check: the gateway gets the assertion, not the token.
    expect(upstream.valuesOf(upstream.received.at(-1)!, 'authorization')).toEqual([]);
  });

  test("a trusted address naming another user is refused: without a token, with alice's, or with one it signed itself", async () => {
    await fetch(`${origin}/seen`, { headers: { cookie } });
    const token = lastToken();
    const before = upstream.received.length;
    const direct = (headers: Record<string, string>) => fetch(`${sc.url}/admin`, { headers });
    const refusal = async (res: Response) => [res.status, ((await res.json()) as { error: string }).error];
    expect(await refusal(await direct({ 'x-forwarded-email': 'admin@example.com' }))).toEqual([401, 'identity_token_missing']);
    expect(await refusal(await direct({ 'x-forwarded-email': 'admin@example.com', authorization: `Bearer ${token}` }))).toEqual([
      401,
      'identity_token_mismatch',
    ]);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const own = await new SignJWT({ iss: issuer, aud: 'openclaw', exp: Math.floor(Date.now() / 1000) + 300, email: 'admin@example.com', email_verified: true })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .sign(privateKey);
    expect(await refusal(await direct({ 'x-forwarded-email': 'admin@example.com', authorization: `Bearer ${own}` }))).toEqual([401, 'identity_token_invalid']);
    // Nothing of it reached the gateway; alice's own token still passes on its own.
    expect(upstream.received.length).toBe(before);
    expect((await direct({ authorization: `Bearer ${token}` })).status).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
  });
});

describe("the key set's freshness, with a provider that stops answering", () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let provider: http.Server;
  let port: number;
  let answering = true;
  let upstream: RecordingUpstream;
  let sc: TestSidecar;

  beforeAll(async () => {
    const jwk = { ...(await exportJWK(publicKey)), kid: 'p1', alg: 'ES256', use: 'sig' };
    provider = http.createServer((req, res) => {
      if (!answering) return void res.writeHead(503).end();
      const issuer = `http://127.0.0.1:${port}`;
      const body = req.url === '/.well-known/openid-configuration' ? { issuer, jwks_uri: `${issuer}/jwks` } : req.url === '/jwks' ? { keys: [jwk] } : undefined;
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', r));
    port = (provider.address() as AddressInfo).port;
    upstream = await startRecordingUpstream();
    sc = await startSidecar(upstream.url, {
      identity: { token: { mode: 'require', issuer: `http://127.0.0.1:${port}`, audiences: ['app'], refreshSeconds: 1, staleAfterSeconds: 2 } },
    });
    await waitFor(async () => (await fetch(`${sc.adminUrl}/readyz`)).status === 200, 'the provider keys fetched');
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
    await new Promise((r) => provider.close(r));
  });

  test('the last keys serve until stale, then tokens are refused with 503 and readiness fails, until the provider is back', async () => {
    const token = await new SignJWT({
      iss: `http://127.0.0.1:${port}`,
      aud: 'app',
      exp: Math.floor(Date.now() / 1000) + 600,
      email: 'bob@example.com',
      email_verified: true,
    })
      .setProtectedHeader({ alg: 'ES256', kid: 'p1' })
      .sign(privateKey);
    const request = () => fetch(`${sc.url}/x`, { headers: { authorization: `Bearer ${token}` } });
    expect((await request()).status).toBe(200);
    answering = false;
    await waitFor(async () => sample(await scrape(sc.adminUrl), 'trusted_proxy_provider_key_fetches_total', { result: 'error' }) >= 1, 'a failed fetch');
    await waitFor(async () => (await request()).status === 503, 'the keys gone stale', 10_000);
    const ready = (await (await fetch(`${sc.adminUrl}/readyz`)).json()) as { problems: string[] };
    expect(ready.problems.join()).toContain('identity provider keys stale');
    answering = true;
    await waitFor(async () => (await request()).status === 200, 'the keys fetched again', 10_000);
  });
});
