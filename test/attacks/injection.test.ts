// header-attacks.md classes 10 and 11: hostile identity values, and replaying an
// assertion captured from one request against another.
import { AssertionError, ReplayCache, verifyAssertion } from '../../src/assertion/verify.js';
import { HOST, http11, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

const withUser = (value: string | Buffer, target = '/') =>
  Buffer.concat([
    Buffer.from(`GET ${target} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\nX-Auth-Request-Email: `),
    Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1'),
    Buffer.from('\r\n\r\n'),
  ]);

describe('10. header value injection', () => {
  test.each([
    ['bytes that are not UTF-8', Buffer.from([0x61, 0xff, 0xfe, 0x62])],
    ['an overlong UTF-8 encoding', Buffer.from([0x61, 0xc0, 0xaf, 0x62])],
    ['a UTF-8 encoded C1 control', Buffer.from('al\u0085ice', 'utf8')],
    ['a tab inside', Buffer.from('al\tice')],
  ])('%s: refused as identity_invalid, nothing forwarded', async (_what, value) => {
    const before = stack.upstream.received.length;
    const { status, reply } = await stack.send(withUser(value));
    expect(status).toBe(401);
    expect(reply).toContain('{"error":"identity_invalid"}');
    expect(stack.upstream.received).toHaveLength(before);
  });

  test('CR LF in the value cannot add a header line: the parser refuses it', async () => {
    const before = stack.upstream.received.length;
    const { status } = await stack.send(withUser('alice\r\nX-Forwarded-User: admin\rX'));
    expect(status).toBe(400);
    expect(stack.upstream.received).toHaveLength(before);
  });

  test('quotes, backslashes and JSON-like text stay data in the assertion, the header and the log', async () => {
    // No comma: a comma reads as a joined list and is refused.
    const user = 'a"b\\c"}{"sub":"admin"} </script>\u2028\\u0000';
    const raw = Buffer.from(user, 'utf8');
    const { status } = await stack.send(withUser(raw));
    expect(status).toBe(200);
    const got = stack.upstream.received.at(-1)!;
    // The plain header carries the exact bytes the proxy sent.
    expect(Buffer.from(String(got.headers['x-forwarded-user']), 'latin1')).toEqual(raw);
    const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), { keys: stack.sc.keys });
    expect(claims.sub).toBe(user);
    // Each log line is one JSON object (the sink parses every line) that names the user exactly.
    expect(stack.sc.logs.some((l) => l['msg'] === 'allowed' && l['user'] === user)).toBe(true);
  });

  test('a UTF-8 name arrives decoded in the assertion and byte-exact in the header', async () => {
    const { status } = await stack.send(withUser(Buffer.from('zoë@exämple.com', 'utf8')));
    expect(status).toBe(200);
    const got = stack.upstream.received.at(-1)!;
    expect(Buffer.from(String(got.headers['x-forwarded-user']), 'latin1').toString('utf8')).toBe('zoë@exämple.com');
    const claims = await verifyAssertion(String(got.headers['x-trusted-proxy-assertion']), { keys: stack.sc.keys });
    expect(claims.sub).toBe('zoë@exämple.com');
  });

  test('a refused value is never echoed to the client', async () => {
    const { reply } = await stack.send(withUser(`<script>${'x'.repeat(300)}`));
    expect(reply).toContain('{"error":"identity_too_long"}');
    expect(reply).not.toContain('<script>');
  });
});

describe('11. replay of a captured assertion', () => {
  let token: string;
  beforeAll(async () => {
    const { status } = await stack.send(http11([HOST, ['X-Auth-Request-Email', 'alice@example.com']], { target: '/reports/1?x=1' }));
    expect(status).toBe(200);
    token = String(stack.upstream.received.at(-1)!.headers['x-trusted-proxy-assertion']);
  });
  const code = async (p: Promise<unknown>) =>
    p.then(
      () => 'verified',
      (e: unknown) => (e instanceof AssertionError ? e.code : String(e)),
    );

  test('it verifies for the request it was minted for, query included', async () => {
    expect(await code(verifyAssertion(token, { keys: stack.sc.keys, request: { method: 'GET', uri: 'http://app.example/reports/1?x=1' } }))).toBe('verified');
  });
  test('another path, query, method, host or scheme is refused', async () => {
    const keys = stack.sc.keys;
    // The third adversarial pass: the query was not bound, so a captured assertion served
    // the same path with the attacker's query.
    expect(await code(verifyAssertion(token, { keys, request: { method: 'GET', uri: 'http://app.example/reports/1?x=2' } }))).toBe('target');
    expect(await code(verifyAssertion(token, { keys, request: { method: 'GET', uri: 'http://app.example/reports/1' } }))).toBe('target');
    expect(await code(verifyAssertion(token, { keys, request: { method: 'GET', uri: 'http://app.example/admin' } }))).toBe('target');
    expect(await code(verifyAssertion(token, { keys, request: { method: 'GET', uri: 'http://app.example/reports/2' } }))).toBe('target');
    expect(await code(verifyAssertion(token, { keys, request: { method: 'DELETE', uri: 'http://app.example/reports/1' } }))).toBe('method');
    expect(await code(verifyAssertion(token, { keys, request: { method: 'GET', uri: 'http://evil.example/reports/1' } }))).toBe('target');
    expect(await code(verifyAssertion(token, { keys, request: { method: 'GET', uri: 'https://app.example/reports/1' } }))).toBe('target');
  });
  test('later than its short lifetime, it is refused', async () => {
    const later = Date.now() + (stack.sc.config.assertion.ttlSeconds + 6) * 1000;
    expect(await code(verifyAssertion(token, { keys: stack.sc.keys, now: () => later }))).toBe('expired');
  });
  test('a second use is refused by a replay cache', async () => {
    const replayCache = new ReplayCache();
    expect(await code(verifyAssertion(token, { keys: stack.sc.keys, replayCache }))).toBe('verified');
    expect(await code(verifyAssertion(token, { keys: stack.sc.keys, replayCache }))).toBe('replayed');
  });
  test('a replayed assertion sent back through the sidecar is replaced, not forwarded', async () => {
    const { status } = await stack.send(
      http11([HOST, ['X-Auth-Request-Email', 'alice@example.com'], ['X-Trusted-Proxy-Assertion', token]], { target: '/admin' }),
    );
    expect(status).toBe(200);
    const got = stack.upstream.received.at(-1)!;
    expect(stack.upstream.valuesOf(got, 'x-trusted-proxy-assertion')).toHaveLength(1);
    expect(got.headers['x-trusted-proxy-assertion']).not.toBe(token);
  });
});
