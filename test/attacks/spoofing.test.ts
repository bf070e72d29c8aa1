// header-attacks.md classes 1–8: spoofed identity, owned headers from a trusted source,
// name aliases, duplicates, Connection abuse, X-Forwarded-For and friends, addresses.
import { verifyAssertion } from '../../src/assertion/verify.js';
import type { Received } from '../../harness/upstream.js';
import { ALICE, FORGED, HOST, http11, startStack, type Stack } from './harness.js';

const CONFIG = {
  identity: { emailHeader: 'x-auth-request-user-email', groupsHeader: 'x-auth-request-groups' },
  gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin'] } } },
};
// Hops the trusted proxy may have passed through; 127.0.0.1 itself is the trusted proxy.
const HOPS = '198.51.100.0/24';

let trusted: Stack;
let untrusted: Stack;
beforeAll(async () => {
  trusted = await startStack({ ...CONFIG, trust: { cidrs: [HOPS] } });
  // Dual-stack, so IPv4 peers arrive as ::ffff:127.0.0.1: still loopback, and untrusted.
  untrusted = await startStack({ ...CONFIG, listen: { host: '::' }, trust: { allowLoopback: false, cidrs: ['10.0.0.0/8'] } });
});
afterAll(async () => {
  await trusted?.stop();
  await untrusted?.stop();
});

/** Sends one request to the trusted sidecar and returns what the upstream received for it. */
async function through(lines: readonly (readonly [string, string])[], opts?: Parameters<typeof http11>[1]): Promise<Received> {
  const before = trusted.upstream.received.length;
  const { status, reply } = await trusted.send(http11(lines, opts));
  expect({ status, reply }).toMatchObject({ status: 200 });
  expect(trusted.upstream.received).toHaveLength(before + 1);
  return trusted.upstream.received.at(-1)!;
}
async function refused(stack: Stack, lines: readonly (readonly [string, string])[], status: number, reason?: string): Promise<string> {
  const before = stack.upstream.received.length;
  const { status: got, reply } = await stack.send(http11(lines));
  expect(got).toBe(status);
  if (reason) expect(reply).toContain(`{"error":"${reason}"}`);
  expect(stack.upstream.received).toHaveLength(before);
  return reply;
}
/** Every (lower-case name, value) line the upstream received for names matching `re`. */
const linesMatching = (r: Received, re: RegExp) =>
  r.rawHeaders.flatMap((n, i) => (i % 2 === 0 && re.test(n.toLowerCase().replace(/[_.]/g, '-')) ? [[n.toLowerCase(), r.rawHeaders[i + 1]!]] : []));

describe('1. spoofed identity from an untrusted source', () => {
  test.each([
    ['127.0.0.1', 'IPv4 loopback'],
    ['::1', 'IPv6 loopback'],
  ])('refused from %s (%s), nothing forwarded, nothing echoed', async (host) => {
    const forged = [HOST, ['X-Auth-Request-Email', 'admin@example.com'], ['X-Trusted-Proxy-Assertion', FORGED], ['X-Forwarded-User', 'admin']] as const;
    const before = untrusted.upstream.received.length;
    const { status, reply } = await untrusted.send(http11(forged), host);
    expect(status).toBe(403);
    expect(reply.slice(reply.indexOf('\r\n\r\n') + 4)).toBe('{"error":"untrusted_source"}');
    expect(reply).not.toContain('admin');
    expect(untrusted.upstream.received).toHaveLength(before);
    expect(JSON.stringify(untrusted.sc.logs)).not.toContain('admin@example.com');
  });

  test('refused for another reason first, still never forwarded', async () => {
    // Too many headers and a missing Host are both refusals; neither forwards anything.
    await refused(untrusted, [['X-Auth-Request-Email', 'admin@example.com']], 400);
    await refused(untrusted, [HOST, ['X-Auth-Request-Email', 'admin@example.com'], ['X-Auth-Request-Email', 'x']], 403, 'untrusted_source');
    expect(untrusted.upstream.received).toHaveLength(0);
  });
});

describe('2. owned headers sent by (or through) the trusted proxy', () => {
  test('client copies of the assertion, gateway user, scopes and X-Forwarded-* are replaced', async () => {
    const got = await through([
      HOST,
      ALICE,
      ['X-Trusted-Proxy-Assertion', FORGED],
      ['X-Forwarded-User', 'admin'],
      ['X-OpenClaw-Scopes', 'operator.admin'],
      ['X-Forwarded-For', 'not-an-ip'],
      ['X-Forwarded-Proto', 'gopher'],
      ['X-Forwarded-Host', 'evil.example/path'],
    ]);
    expect(linesMatching(got, /^(x-forwarded-|x-trusted-proxy-assertion|x-openclaw-scopes|x-auth-request-)/)).toEqual([
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'app.example'],
      ['x-forwarded-user', 'alice@example.com'],
      ['x-openclaw-scopes', 'operator.read'],
      ['x-trusted-proxy-assertion', got.headers['x-trusted-proxy-assertion']],
    ]);
    expect(got.headers['x-trusted-proxy-assertion']).not.toBe(FORGED);
    const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), {
      keys: trusted.sc.keys,
      request: { method: 'GET', uri: 'http://app.example/' },
    });
    expect(claims.sub).toBe('alice@example.com');
  });

  test('the identity headers themselves are not passed on; only the sidecar forms are', async () => {
    const got = await through([HOST, ALICE, ['X-Auth-Request-User-Email', 'alice@example.com'], ['X-Auth-Request-Groups', 'admins']]);
    expect(linesMatching(got, /^x-auth-request-/)).toEqual([]);
    expect(got.headers['x-openclaw-scopes']).toBe('operator.admin');
  });
});

describe('3. name aliases', () => {
  test.each(['X_Auth_Request_Email', 'x.auth.request.email', 'X-Auth_Request.Email'])('%s never counts as the identity', async (alias) => {
    await refused(trusted, [HOST, [alias, 'admin@example.com']], 401, 'identity_missing');
  });

  test('aliases of every owned name are stripped, never forwarded', async () => {
    const got = await through([
      HOST,
      ALICE,
      ['X_Auth_Request_Email', 'admin@example.com'],
      ['x.auth.request.groups', 'admins'],
      ['X_Forwarded_User', 'admin'],
      ['x.forwarded.user', 'admin'],
      ['X_Trusted_Proxy_Assertion', FORGED],
      ['x_openclaw_scopes', 'operator.admin'],
      ['X_Forwarded_For', '6.6.6.6'],
      ['X_Real_IP', '6.6.6.6'],
    ]);
    expect(got.rawHeaders.some((v) => /admin|6\.6\.6\.6|eyJhbGciOiJub25l/.test(v))).toBe(false);
    expect(got.rawHeaders.filter((_, i) => i % 2 === 0).some((n) => /[_.]/.test(n))).toBe(false);
    expect(got.headers['x-openclaw-scopes']).toBe('operator.read');
  });

  test('mixed case is the same header', async () => {
    const got = await through([HOST, ['x-AUTH-request-EMAIL', 'alice@example.com'], ['X-FORWARDED-USER', 'admin']]);
    expect(trusted.upstream.valuesOf(got, 'x-forwarded-user')).toEqual(['alice@example.com']);
  });

  test('a space before the colon is a 400, not a second spelling', async () => {
    const before = trusted.upstream.received.length;
    const { status } = await trusted.send(`GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email : admin@example.com\r\n\r\n`);
    expect(status).toBe(400);
    const { status: s2 } = await trusted.send(
      `GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: alice@example.com\r\nX-Forwarded-User : admin\r\n\r\n`,
    );
    expect(s2).toBe(400);
    expect(trusted.upstream.received).toHaveLength(before);
  });
});

describe('4. duplicates', () => {
  test('two identity lines are refused, not joined', async () => {
    await refused(trusted, [HOST, ALICE, ['X-Auth-Request-Email', 'admin@example.com']], 401, 'identity_duplicated');
    await refused(trusted, [HOST, ALICE, ALICE], 401, 'identity_duplicated');
  });
  test('a comma-joined identity is refused', async () => {
    await refused(trusted, [HOST, ['X-Auth-Request-Email', 'alice@example.com, admin@example.com']], 401, 'identity_duplicated');
  });
  test('two Host lines are refused', async () => {
    await refused(trusted, [HOST, ['Host', 'evil.example'], ALICE], 400, 'bad_request');
  });
  test('duplicate groups or email lines are refused', async () => {
    await refused(trusted, [HOST, ALICE, ['X-Auth-Request-Groups', 'readers'], ['X-Auth-Request-Groups', 'admins']], 401, 'identity_duplicated');
    await refused(trusted, [HOST, ALICE, ['X-Auth-Request-User-Email', 'a@b.c'], ['X-Auth-Request-User-Email', 'd@e.f']], 401, 'identity_duplicated');
  });
});

describe('5. Connection nominating headers', () => {
  test('nominating the identity removes it before it is checked', async () => {
    await refused(trusted, [HOST, ['Connection', 'close, X-Auth-Request-Email'], ALICE], 401, 'identity_missing');
  });

  test('headers the sidecar sets cannot be nominated away', async () => {
    const got = await through([
      HOST,
      ALICE,
      ['Connection', 'keep-alive, X-Trusted-Proxy-Assertion, X-Forwarded-User, X-OpenClaw-Scopes, X-Forwarded-Proto, X-Forwarded-Host, X-Request-Id'],
    ]);
    for (const name of ['x-trusted-proxy-assertion', 'x-forwarded-user', 'x-openclaw-scopes', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']) {
      expect(trusted.upstream.valuesOf(got, name)).toHaveLength(1);
    }
    expect(trusted.upstream.valuesOf(got, 'connection').join()).not.toMatch(/x-/i);
  });

  test('nominating X-Forwarded-For drops the forged list, not the trust walk', async () => {
    const got = await through([HOST, ALICE, ['X-Forwarded-For', '6.6.6.6'], ['Connection', 'x-forwarded-for']]);
    expect(got.rawHeaders.join('\n')).not.toContain('6.6.6.6');
  });

  test('nominating an ordinary header removes just that header', async () => {
    const got = await through([HOST, ALICE, ['X-Custom', 'drop-me'], ['X-Keep', 'kept'], ['Connection', 'X-Custom']]);
    expect(got.headers['x-custom']).toBeUndefined();
    expect(got.headers['x-keep']).toBe('kept');
  });
});

describe('6. X-Forwarded-For', () => {
  test.each([
    ['the right-most untrusted entry is the client', '6.6.6.6, 203.0.113.9', '203.0.113.9'],
    ['trusted hops are skipped', '6.6.6.6, 203.0.113.9, 198.51.100.7, 198.51.100.8', '203.0.113.9'],
    ['several lines are one list', ['6.6.6.6', '203.0.113.9, 198.51.100.7'], '203.0.113.9'],
    ['a mapped entry is its IPv4 self', '::ffff:203.0.113.9', '203.0.113.9'],
    ['IPv6 clients pass', '2001:db8::9', '2001:db8::9'],
    // Where loopback is allowed it is a trusted hop like any other.
    ['a loopback hop is skipped when loopback is trusted', '6.6.6.6, 203.0.113.9, 127.0.0.1', '203.0.113.9'],
  ])('%s', async (_what, xff, client) => {
    const lines = (Array.isArray(xff) ? xff : [xff]).map((v) => ['X-Forwarded-For', v] as const);
    const got = await through([HOST, ALICE, ...lines]);
    expect(trusted.upstream.valuesOf(got, 'x-forwarded-for')).toEqual([client]);
    const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), { keys: trusted.sc.keys });
    expect(claims.cip).toBe(client);
  });

  test.each([
    ['a malformed entry ends trust', '203.0.113.9, garbage, 198.51.100.7'],
    ['an octal entry is malformed', '203.0.113.9, 010.0.0.1'],
    ['an entry with a port is malformed', '203.0.113.9, 198.51.100.7:80'],
    ['an unspecified entry ends trust', '203.0.113.9, 0.0.0.0'],
    ['all trusted', '198.51.100.7, 198.51.100.8'],
  ])('%s: the proxy itself is the client, and loopback is never sent', async (_what, xff) => {
    const got = await through([HOST, ALICE, ['X-Forwarded-For', xff]]);
    expect(trusted.upstream.valuesOf(got, 'x-forwarded-for')).toEqual([]);
    const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), { keys: trusted.sc.keys });
    expect(claims.cip).toBe('127.0.0.1');
  });
});

describe('7. other forwarded headers', () => {
  test('Forwarded, X-Real-IP and X-Forwarded-Port/Prefix/Uri/Method are dropped; Host/Proto rebuilt', async () => {
    const got = await through(
      [
        HOST,
        ALICE,
        ['Forwarded', 'for=6.6.6.6;host=evil.example;proto=https'],
        ['X-Real-IP', '6.6.6.6'],
        ['X-Forwarded-Port', '443'],
        ['X-Forwarded-Prefix', '/admin'],
        ['X-Forwarded-Uri', '/admin/delete'],
        ['X-Forwarded-Method', 'DELETE'],
        ['X-Forwarded-Server', 'evil'],
        ['X-Forwarded-Proto', 'https'],
        ['X-Forwarded-Host', 'gateway.example:8443'],
      ],
      { target: '/a?b=c' },
    );
    const names = got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const gone of ['forwarded', 'x-real-ip', 'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-uri', 'x-forwarded-method', 'x-forwarded-server']) {
      expect(names).not.toContain(gone);
    }
    expect(got.headers).toMatchObject({ host: 'app.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'gateway.example:8443' });
    expect(got.url).toBe('/a?b=c');
    const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), { keys: trusted.sc.keys });
    expect(claims).toMatchObject({ htm: 'GET', htu: 'https://gateway.example:8443/a?b=c' });
  });

  test('an invalid forwarded host or scheme falls back to the connection', async () => {
    const got = await through([HOST, ALICE, ['X-Forwarded-Proto', 'https, http'], ['X-Forwarded-Host', 'a.example, b.example']]);
    expect(got.headers).toMatchObject({ 'x-forwarded-proto': 'http', 'x-forwarded-host': 'app.example' });
  });
});

describe('8. loopback and mapped peers', () => {
  test('a dual-stack listener sees ::ffff:127.0.0.1 and still classifies it as loopback', async () => {
    const dual = await startStack({ listen: { host: '::' }, trust: { allowLoopback: false, cidrs: ['10.0.0.0/8'] } });
    try {
      const { status } = await dual.send(http11([HOST, ALICE]), '127.0.0.1');
      expect(status).toBe(403);
      expect(dual.sc.logs.find((l) => l['msg'] === 'refused')).toMatchObject({ peer: '127.0.0.1', reason: 'untrusted_source', detail: 'loopback_not_allowed' });
      expect(dual.upstream.received).toHaveLength(0);
    } finally {
      await dual.stop();
    }
  });

  test('allowed loopback over a dual-stack listener: forwarded, but never as the client address', async () => {
    const dual = await startStack({ listen: { host: '::' }, trust: { allowLoopback: true, cidrs: ['127.0.0.1', '::1'] } });
    try {
      for (const host of ['127.0.0.1', '::1']) {
        const { status } = await dual.send(http11([HOST, ALICE, ['X-Forwarded-For', '127.0.0.1']]), host);
        expect(status).toBe(200);
        const got = dual.upstream.received.at(-1)!;
        expect(dual.upstream.valuesOf(got, 'x-forwarded-for')).toEqual([]);
      }
      expect(dual.upstream.received).toHaveLength(2);
    } finally {
      await dual.stop();
    }
  });

  // In a pod every container, and a mesh's proxy (127.0.0.6), is a loopback peer: allowing
  // loopback must trust only the loopback addresses listed.
  test('loopback by membership: only the listed loopback address is trusted, another container on loopback is refused', async () => {
    const stack = await startStack({ trust: { allowLoopback: true, cidrs: ['127.0.0.6'] } });
    try {
      const other = await stack.send(http11([HOST, ALICE]), '127.0.0.1', undefined, '127.0.0.1');
      expect(other.status).toBe(403);
      expect(stack.sc.logs.find((l) => l['msg'] === 'refused')).toMatchObject({
        peer: '127.0.0.1',
        reason: 'untrusted_source',
        detail: expect.stringContaining('not_in_trusted_set'),
      });
      expect(stack.upstream.received).toHaveLength(0);
      const listed = await stack.send(http11([HOST, ALICE]), '127.0.0.1', undefined, '127.0.0.6');
      expect(listed.status).toBe(200);
      expect(stack.upstream.received).toHaveLength(1);
    } finally {
      await stack.stop();
    }
  });
});
