// The guard inside a Node gateway's process (dist/guard.js, loaded with `node --import`),
// in front of a gateway built as OpenClaw builds one (test/fixtures/guard/gateway.mjs).
// The real sidecar reaches it; a client that goes around the sidecar to the gateway's port
// does not, whatever it sends: forged headers, an assertion taken from another request,
// another user, an Expect request, an upgrade, a CONNECT, a reset mid-check.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { newKeyFile } from '../../src/assertion/keys.js';
import { AssertionSigner, randomId } from '../../src/assertion/sign.js';
import { onJsonLines, stopChild } from '../support/front-proxies.js';
import { freePort } from '../../harness/ports.js';
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { waitFor } from '../../harness/wait.js';

// Alone in a folder, as in the gateway's container, which has none of the sidecar's packages.
const GUARD_DIR = mkdtempSync(join(tmpdir(), 'tps-guard-'));
const GUARD = join(GUARD_DIR, 'guard.js');
copyFileSync(join(import.meta.dirname, '..', '..', 'dist', 'guard.js'), GUARD);
afterAll(() => rmSync(GUARD_DIR, { recursive: true, force: true }));
const GATEWAY = join(import.meta.dirname, '..', 'fixtures', 'guard', 'gateway.mjs');
const ALICE = 'alice@example.com';

interface Gateway {
  child: ChildProcess;
  port: number;
  otherPort: number;
  /** Every event that reached the gateway's own listeners. */
  events: Record<string, any>[];
  stderr(): string;
  exited: Promise<number | null>;
}

async function startGateway(env: Record<string, string>): Promise<Gateway> {
  const [port, otherPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, ['--import', GUARD, GATEWAY, String(port), String(otherPort)], {
    env: { PATH: process.env['PATH'], TRUSTED_PROXY_GUARD_PORTS: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, any>[] = [];
  onJsonLines(child.stdout!, (l) => lines.push(l));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const gw: Gateway = { child, port, otherPort, events: [], stderr: () => stderr, exited };
  onJsonLines(child.stdout!, (l) => (l['event'] ? gw.events.push(l) : undefined));
  await waitFor(() => lines.some((l) => l['listening']) || child.exitCode !== null, 'the gateway to listen', 10_000, 20);
  if (child.exitCode !== null) throw new Error(`the gateway exited: ${stderr}`);
  return gw;
}

const request = (lines: string[], body = '') => `${lines.join('\r\n')}\r\n\r\n${body}`;
const upgradeLines = (path: string, extra: string[] = []) => [
  `GET ${path} HTTP/1.1`,
  'Host: claw.example.com',
  'Connection: Upgrade',
  'Upgrade: websocket',
  'Sec-WebSocket-Version: 13',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  ...extra,
];

describe("HS256: the sidecar's key folder", () => {
  let sc: TestSidecar;
  let gw: Gateway;
  // Made in beforeAll, not as the file is read: a run that filters these tests out runs no afterAll.
  let keysDir: string;
  beforeAll(async () => {
    keysDir = mkdtempSync(join(tmpdir(), 'tps-guard-keys-'));
    // The gateway first (its port is the sidecar's upstream), then the sidecar with the keys it reads.
    writeFileSync(join(keysDir, 'k1'), Buffer.alloc(32, 9));
    gw = await startGateway({
      TRUSTED_PROXY_GUARD_KEYS_DIR: keysDir,
      TRUSTED_PROXY_GUARD_OPEN_PATHS: '/healthz',
      TRUSTED_PROXY_GUARD_USER_HEADER: 'x-forwarded-user',
    });
    sc = await startSidecar(
      `http://127.0.0.1:${gw.port}`,
      { assertion: { keysDir, activeKeyId: 'k1' }, gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'] } } },
      { configFile: true },
    );
  });
  afterAll(async () => {
    await sc?.stop();
    if (gw) await stopChild(gw.child);
    if (keysDir) rmSync(keysDir, { recursive: true, force: true });
  });

  /** Sends to the gateway's port directly and checks that nothing reached the gateway's code. */
  async function refusedDirectly(bytes: string, error: string): Promise<string> {
    const before = gw.events.length;
    const reply = await rawRequest(gw.port, bytes);
    expect(statusOf(reply)).toBe(401);
    expect(reply).toContain(`{"error":"${error}"}`);
    expect(reply).not.toMatch(/^HTTP\/1\.1 100/);
    // A later request through the sidecar is seen: nothing of the refused one was, before it.
    await throughSidecar('/after');
    expect(gw.events.slice(before).map((e) => e.url)).toEqual(['/after']);
    return reply;
  }

  async function throughSidecar(path: string, method = 'GET'): Promise<Record<string, any>> {
    const before = gw.events.length;
    const reply = await rawRequest(
      sc.port,
      request([`${method} ${path} HTTP/1.1`, 'Host: claw.example.com', `X-Auth-Request-Email: ${ALICE}`, 'Content-Length: 0', 'Connection: close']),
    );
    expect(statusOf(reply)).toBe(200);
    expect(gw.events).toHaveLength(before + 1);
    return gw.events.at(-1)!;
  }

  test('through the sidecar: a request and an upgrade reach the gateway with the verified identity', async () => {
    const seen = await throughSidecar('/api/x?y=1');
    expect(seen).toMatchObject({ event: 'request', url: '/api/x?y=1', headers: { 'x-forwarded-user': ALICE } });
    const reply = await rawRequest(sc.port, request(upgradeLines('/ws', [`X-Auth-Request-Email: ${ALICE}`, 'Origin: http://claw.example.com'])));
    expect(statusOf(reply)).toBe(101);
    expect(gw.events.at(-1)).toMatchObject({ event: 'upgrade', url: '/ws' });
  });

  test('around the sidecar: forged identity headers are refused by the gateway process itself', async () => {
    await refusedDirectly(
      request(['GET /api/x HTTP/1.1', 'Host: claw.example.com', `X-Forwarded-User: ${ALICE}`, 'X-Openclaw-Scopes: operator.admin']),
      'assertion_missing',
    );
    await refusedDirectly(
      request(['GET /api/x HTTP/1.1', 'Host: claw.example.com', `X-Forwarded-User: ${ALICE}`, 'X-Trusted-Proxy-Assertion: eyJhbGciOiJub25lIn0.e30.']),
      'assertion_unknown_key',
    );
  });

  test('an assertion taken from one request is refused for another target, another method or another user', async () => {
    const seen = await throughSidecar('/api/x');
    const token = seen.headers['x-trusted-proxy-assertion'] as string;
    const forged = (line: string, user = ALICE, assertion = token) =>
      request([
        line,
        'Host: claw.example.com',
        'X-Forwarded-Proto: http',
        'X-Forwarded-Host: claw.example.com',
        `X-Forwarded-User: ${user}`,
        'X-Openclaw-Scopes: operator.read',
        `X-Trusted-Proxy-Assertion: ${assertion}`,
        'Content-Length: 0',
      ]);
    await refusedDirectly(forged('GET /api/admin HTTP/1.1'), 'assertion_target');
    await refusedDirectly(forged('DELETE /api/x HTTP/1.1'), 'assertion_method');
    // The captured one was used by its own request; a fresh one, as the key holder would mint it, for alice:
    const now = Math.floor(Date.now() / 1000);
    const fresh = new AssertionSigner('k1', Buffer.alloc(32, 9)).sign({
      iss: 'trusted-proxy-sidecar',
      aud: 'gateway',
      sub: ALICE,
      groups: [],
      scope: 'operator.read',
      iat: now,
      nbf: now,
      exp: now + 30,
      jti: randomId(),
      cip: '203.0.113.7',
      htm: 'GET',
      htu: 'http://claw.example.com/api/x',
    });
    await refusedDirectly(forged('GET /api/x HTTP/1.1', 'bob@example.com', fresh), 'assertion_user_mismatch');
    // The query is part of the target it binds.
    await refusedDirectly(forged('GET /api/x?admin=1 HTTP/1.1'), 'assertion_target');
  });

  test('a captured assertion is used once: replayed as it was, or with forged scopes, it is refused', async () => {
    const seen = await throughSidecar('/api/once');
    const token = seen.headers['x-trusted-proxy-assertion'] as string;
    expect(seen.headers['x-openclaw-scopes']).toBe('operator.read');
    const again = (scopes: string) =>
      request([
        'GET /api/once HTTP/1.1',
        'Host: claw.example.com',
        'X-Forwarded-Proto: http',
        'X-Forwarded-Host: claw.example.com',
        `X-Forwarded-User: ${ALICE}`,
        `X-Openclaw-Scopes: ${scopes}`,
        `X-Trusted-Proxy-Assertion: ${token}`,
        'Content-Length: 0',
      ]);
    await refusedDirectly(again('operator.read,operator.admin'), 'assertion_scopes');
    await refusedDirectly(again('operator.read'), 'assertion_replayed');
  });

  test("a user beyond ASCII passes: the header's UTF-8 bytes are the assertion's sub", async () => {
    for (const user of ['józef@example.com', '张伟@example.com']) {
      const before = gw.events.length;
      const bytes = Buffer.from(request(['GET /api/me HTTP/1.1', 'Host: claw.example.com', `X-Auth-Request-Email: ${user}`, 'Connection: close']), 'utf8');
      expect(statusOf(await rawRequest(sc.port, bytes))).toBe(200);
      expect(gw.events).toHaveLength(before + 1);
      expect(Buffer.from(gw.events.at(-1)!.headers['x-forwarded-user'] as string, 'latin1').toString('utf8')).toBe(user);
    }
  });

  test('a key rotation as docs/assertion.md orders it: the guard reads the folder again for the new key id', async () => {
    // Step 1 (activeKeyId names the current key) was the start; step 2: the new key joins the
    // folder (the Secret); step 3: the config names it, and the sidecar signs with it.
    await throughSidecar('/before-rotation');
    writeFileSync(join(keysDir, 'k2'), Buffer.alloc(32, 10));
    sc.writeConfig({ ...sc.input, assertion: { ...sc.input.assertion, activeKeyId: 'k2' } });
    await waitFor(() => sc.logs.some((l) => l['msg'] === 'config reloaded'), 'the sidecar to sign with k2');
    const seen = await throughSidecar('/after-rotation');
    expect(JSON.parse(Buffer.from((seen.headers['x-trusted-proxy-assertion'] as string).split('.')[0]!, 'base64url').toString())).toMatchObject({ kid: 'k2' });
  });

  test('Expect: 100-continue and other expectations are refused before the gateway sees them (and no 100 is sent)', async () => {
    await refusedDirectly(
      request(['POST /upload HTTP/1.1', 'Host: claw.example.com', `X-Forwarded-User: ${ALICE}`, 'Expect: 100-continue', 'Content-Length: 5']),
      'assertion_missing',
    );
    await refusedDirectly(request(['POST /upload HTTP/1.1', 'Host: claw.example.com', 'Expect: something-else', 'Content-Length: 0']), 'assertion_missing');
  });

  test('an upgrade and a CONNECT around the sidecar are refused on the socket', async () => {
    await refusedDirectly(request(upgradeLines('/ws', [`X-Forwarded-User: ${ALICE}`])), 'assertion_missing');
    await refusedDirectly(request(['CONNECT 127.0.0.1:22 HTTP/1.1', 'Host: 127.0.0.1:22', `X-Forwarded-User: ${ALICE}`]), 'method_not_allowed');
  });

  test('pipelined behind a refused request, a second request is never parsed', async () => {
    const before = gw.events.length;
    const one = request(['GET /a HTTP/1.1', 'Host: claw.example.com', `X-Forwarded-User: ${ALICE}`]);
    const reply = await rawRequest(gw.port, one + one.replace('/a', '/b'));
    expect(reply.match(/HTTP\/1\.1 401/g)).toHaveLength(1);
    await throughSidecar('/after');
    expect(gw.events.slice(before).map((e) => e.url)).toEqual(['/after']);
  });

  test('an open path passes for GET and HEAD only; a server on another port is not guarded', async () => {
    const open = await rawRequest(gw.port, request(['GET /healthz HTTP/1.1', 'Host: x', 'Connection: close']));
    expect(statusOf(open)).toBe(200);
    expect(gw.events.at(-1)).toMatchObject({ event: 'request', url: '/healthz' });
    await refusedDirectly(request(['POST /healthz HTTP/1.1', 'Host: x', 'Content-Length: 0']), 'assertion_missing');
    const other = await rawRequest(gw.otherPort, request(['GET /internal HTTP/1.1', 'Host: x', 'Connection: close']));
    expect(statusOf(other)).toBe(200);
  });

  test('clients that reset mid-check, by the hundred, do not end the gateway', async () => {
    const bytes = request(upgradeLines('/ws', ['X-Trusted-Proxy-Assertion: eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.e30.c2ln']));
    await Promise.all(
      Array.from(
        { length: 200 },
        () =>
          new Promise<void>((done) => {
            const s = connect({ host: '127.0.0.1', port: gw.port }, () => {
              s.write(bytes);
              s.resetAndDestroy();
            });
            s.on('error', () => {});
            s.on('close', () => done());
          }),
      ),
    );
    await throughSidecar('/still-here');
    expect(gw.child.exitCode).toBeNull();
    // The refusals were logged, within the line budget of one address (5 at once, then one a second).
    expect(gw.stderr()).toMatch(/"msg":"trusted-proxy-sidecar guard refused"/);
    expect(
      gw
        .stderr()
        .split('\n')
        .filter((l) => l.includes('guard refused')).length,
    ).toBeLessThan(20);
  });
});

describe('machine routes: the guard admits a route assertion only on that route, and never with a user', () => {
  let sc: TestSidecar;
  let gw: Gateway;
  let keysDir: string;
  const HOOKS = { name: 'hooks', path: '/hooks', methods: ['POST'] };
  beforeAll(async () => {
    keysDir = mkdtempSync(join(tmpdir(), 'tps-guard-routes-'));
    writeFileSync(join(keysDir, 'k1'), Buffer.alloc(32, 5));
    gw = await startGateway({
      TRUSTED_PROXY_GUARD_KEYS_DIR: keysDir,
      TRUSTED_PROXY_GUARD_USER_HEADER: 'x-forwarded-user',
      TRUSTED_PROXY_GUARD_MACHINE_ROUTES: JSON.stringify([HOOKS]),
    });
    sc = await startSidecar(`http://127.0.0.1:${gw.port}`, {
      assertion: { keysDir, activeKeyId: 'k1' },
      routes: [
        { ...HOOKS, mode: 'machine' },
        // A machine route the guard was not told of.
        { name: 'other', path: '/other', mode: 'machine' },
      ],
    });
  });
  afterAll(async () => {
    await sc?.stop();
    if (gw) await stopChild(gw.child);
    if (keysDir) rmSync(keysDir, { recursive: true, force: true });
  });

  /** A route assertion signed with the sidecar's key for `method target`. */
  const routeAssertion = (route: string, method: string, target: string) => {
    const iat = Math.floor(Date.now() / 1000);
    return new AssertionSigner('k1', Buffer.alloc(32, 5)).sign({
      iss: 'trusted-proxy-sidecar',
      aud: 'gateway',
      sub: `route:${route}`,
      route,
      groups: [],
      iat,
      nbf: iat,
      exp: iat + 30,
      jti: randomId(),
      cip: '127.0.0.1',
      htm: method,
      htu: `http://claw.example.com${target}`,
    });
  };
  const direct = async (lines: string[]) => {
    const before = gw.events.length;
    const reply = await rawRequest(gw.port, request([...lines, 'Content-Length: 0', 'Connection: close']));
    return { status: statusOf(reply), reply, reached: gw.events.length > before };
  };

  test('a hook through the sidecar, with no SSO identity: it reaches the gateway with its own token and no user', async () => {
    const before = gw.events.length;
    const reply = await rawRequest(
      sc.port,
      request(
        [
          'POST /hooks/wake HTTP/1.1',
          'Host: claw.example.com',
          'Authorization: Bearer hook-token',
          `X-Auth-Request-Email: ${ALICE}`,
          'Content-Length: 2',
          'Connection: close',
        ],
        '{}',
      ),
    );
    expect(statusOf(reply)).toBe(200);
    const seen = gw.events.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers['authorization']).toBe('Bearer hook-token');
    expect(seen[0]!.headers['x-forwarded-user']).toBeUndefined();
    expect(seen[0]!.headers['x-auth-request-email']).toBeUndefined();
  });

  test('a route the guard was not told of is refused in the gateway process, though the sidecar passed it', async () => {
    const reply = await rawRequest(sc.port, request(['POST /other HTTP/1.1', 'Host: claw.example.com', 'Content-Length: 0', 'Connection: close']));
    expect(statusOf(reply)).toBe(401);
    expect(reply).toContain('{"error":"assertion_route_mismatch"}');
  });

  test('around the sidecar: a route assertion with a user header, for another method, or another path is refused', async () => {
    const withUser = await direct([
      'POST /hooks/wake HTTP/1.1',
      'Host: claw.example.com',
      `X-Forwarded-User: ${ALICE}`,
      `X-Trusted-Proxy-Assertion: ${routeAssertion('hooks', 'POST', '/hooks/wake')}`,
    ]);
    expect(withUser).toMatchObject({ status: 401, reached: false });
    expect(withUser.reply).toContain('assertion_user_mismatch');
    const getting = await direct([
      'GET /hooks/wake HTTP/1.1',
      'Host: claw.example.com',
      `X-Trusted-Proxy-Assertion: ${routeAssertion('hooks', 'GET', '/hooks/wake')}`,
    ]);
    expect(getting).toMatchObject({ status: 401, reached: false });
    expect(getting.reply).toContain('assertion_route_mismatch');
    const elsewhere = await direct([
      'POST /api/admin HTTP/1.1',
      'Host: claw.example.com',
      `X-Trusted-Proxy-Assertion: ${routeAssertion('hooks', 'POST', '/api/admin')}`,
    ]);
    expect(elsewhere).toMatchObject({ status: 401, reached: false });
    expect(elsewhere.reply).toContain('assertion_route_mismatch');
    // The same assertion where it belongs is admitted: the refusals above were for what they say.
    const admitted = await direct([
      'POST /hooks/wake HTTP/1.1',
      'Host: claw.example.com',
      `X-Trusted-Proxy-Assertion: ${routeAssertion('hooks', 'POST', '/hooks/wake')}`,
    ]);
    expect(admitted).toMatchObject({ status: 200, reached: true });
  });
});

test('LOCAL_DIRECT: a loopback client with no assertion, identity or forwarding header reaches the gateway; with any of them it needs an assertion', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tps-guard-local-'));
  writeFileSync(join(dir, 'k1'), Buffer.alloc(32, 3));
  const gw = await startGateway({
    TRUSTED_PROXY_GUARD_KEYS_DIR: dir,
    TRUSTED_PROXY_GUARD_USER_HEADER: 'x-forwarded-user',
    TRUSTED_PROXY_GUARD_LOCAL_DIRECT: 'true',
  });
  try {
    const send = (extra: string[]) => rawRequest(gw.port, request(['GET /api/status HTTP/1.1', 'Host: 127.0.0.1', ...extra, 'Connection: close']));
    const before = gw.events.length;
    expect(statusOf(await send([]))).toBe(200);
    expect(gw.events.slice(before).map((e) => e.url)).toEqual(['/api/status']);
    for (const header of [
      'X-Forwarded-User: alice@example.com',
      'X-Openclaw-Scopes: operator.admin',
      'X-Forwarded-For: 203.0.113.9',
      'X_Forwarded_Proto: https',
      'Forwarded: for=1.2.3.4',
      'X-Real-IP: 1.2.3.4',
    ]) {
      const reply = await send([header]);
      expect({ header, status: statusOf(reply) }).toEqual({ header, status: 401 });
    }
    expect(gw.events.length).toBe(before + 1);
  } finally {
    await stopChild(gw.child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('EdDSA: the guard verifies with the JWK Set file the sidecar writes, and holds no secret', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tps-guard-eddsa-'));
  writeFileSync(join(dir, 'ed-1'), newKeyFile('EdDSA'));
  const jwks = join(dir, '..', `${dir.split('/').at(-1)}.jwks.json`);
  // The sidecar writes the JWK Set at start; the gateway's upstream port is chosen first.
  const port = await freePort();
  const sc = await startSidecar(`http://127.0.0.1:${port}`, { assertion: { algorithm: 'EdDSA', keysDir: dir, activeKeyId: 'ed-1', jwksFile: jwks } });
  let gw: Gateway | undefined;
  try {
    const child = spawn(process.execPath, ['--import', GUARD, GATEWAY, String(port), String(await freePort())], {
      env: { PATH: process.env['PATH'], TRUSTED_PROXY_GUARD_PORTS: String(port), TRUSTED_PROXY_GUARD_JWKS: jwks },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: Record<string, any>[] = [];
    let listening = false;
    onJsonLines(child.stdout!, (l) => (l['listening'] ? (listening = true) : events.push(l)));
    gw = { child, port, otherPort: 0, events, stderr: () => '', exited: Promise.resolve(null) };
    await waitFor(() => listening || child.exitCode !== null, 'the gateway to listen', 10_000, 20);
    const reply = await rawRequest(sc.port, request(['GET /x HTTP/1.1', 'Host: claw.example.com', `X-Auth-Request-Email: ${ALICE}`, 'Connection: close']));
    expect(statusOf(reply)).toBe(200);
    expect(events).toHaveLength(1);
    expect(statusOf(await rawRequest(port, request(['GET /x HTTP/1.1', 'Host: claw.example.com', `X-Forwarded-User: ${ALICE}`, 'Connection: close'])))).toBe(
      401,
    );
    expect(events).toHaveLength(1);
  } finally {
    await sc.stop();
    if (gw) await stopChild(gw.child);
    rmSync(dir, { recursive: true, force: true });
    rmSync(jwks, { force: true });
  }
});

test('bad settings stop the gateway before its code runs, with every problem listed', async () => {
  const child = spawn(process.execPath, ['--import', GUARD, GATEWAY, '0', '0'], {
    env: {
      PATH: process.env['PATH'],
      TRUSTED_PROXY_GUARD_PORTS: 'http',
      TRUSTED_PROXY_GUARD_OPEN_PATHS: 'healthz',
      TRUSTED_PROXY_GUARD_HEADER: 'x-assertion:',
      // Would match no header line, so every request would fail as a mismatch.
      TRUSTED_PROXY_GUARD_USER_HEADER: 'x-forwarded user',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((done) => child.once('exit', done));
  try {
    await waitFor(() => child.exitCode !== null, 'the gateway to refuse to start', 10_000, 20);
  } finally {
    child.kill('SIGKILL');
  }
  expect(await exited).toBe(78);
  expect(out).toBe('');
  expect(err).toContain('TRUSTED_PROXY_GUARD_PORTS: must be port numbers');
  expect(err).toContain('TRUSTED_PROXY_GUARD_OPEN_PATHS: must be absolute paths');
  expect(err).toContain('TRUSTED_PROXY_GUARD_KEYS_DIR: set exactly one of');
  expect(err).toContain('TRUSTED_PROXY_GUARD_HEADER: must be a valid HTTP header name');
  expect(err).toContain('TRUSTED_PROXY_GUARD_USER_HEADER: must be a valid HTTP header name');
});
