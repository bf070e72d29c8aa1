// header-attacks.md class 9: request smuggling and parser differentials. The sidecar and
// the gateway must agree on where each request ends, so every ambiguous framing is a 400
// and nothing of it reaches the upstream.
import { sample, scrape } from '../support/metrics.js';
import { ALICE, HOST, http11, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ listen: { maxHeaderCount: 20, maxHeaderBytes: 4096 } });
});
afterAll(async () => {
  await stack?.stop();
});

const SMUGGLED = 'GET /admin HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: admin@example.com\r\n\r\n';
const head = 'POST /submit HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: alice@example.com\r\n';

test.each([
  ['Content-Length with Transfer-Encoding', `${head}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['Transfer-Encoding with Content-Length', `${head}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['two equal Content-Lengths', `${head}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd${SMUGGLED}`],
  ['two different Content-Lengths', `${head}Content-Length: 4\r\nContent-Length: 90\r\n\r\nabcd${SMUGGLED}`],
  ['a Content-Length list', `${head}Content-Length: 4, 4\r\n\r\nabcd${SMUGGLED}`],
  ['chunked not last', `${head}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['two Transfer-Encoding lines', `${head}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${SMUGGLED}`],
  ['an obs-fold continuation of the identity', `GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: alice@example.com\r\n admin@example.com\r\n\r\n`],
  ['an obs-fold continuation with a tab', `GET / HTTP/1.1\r\nHost: app.example\r\nX-Custom: a\r\n\tX-Auth-Request-Email: admin@example.com\r\n\r\n`],
  ['bare LF line ends', `GET / HTTP/1.1\nHost: app.example\nX-Auth-Request-Email: alice@example.com\n\n`],
  ['a bare LF inside the header block', `GET / HTTP/1.1\r\nHost: app.example\r\nX-A: b\nX-Auth-Request-Email: admin@example.com\r\n\r\n`],
  ['a NUL in a value', `GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: admin@example.com\u0000alice\r\n\r\n`],
  ['a bare CR in a value', `GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: alice@example.com\rX-Forwarded-User: admin\r\n\r\n`],
  ['a control character in a value', `GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth-Request-Email: alice\u0001@example.com\r\n\r\n`],
  ['a space in a header name', `GET / HTTP/1.1\r\nHost: app.example\r\nX-Auth Request-Email: admin@example.com\r\n\r\n`],
  ['a chunk size with garbage', `${head}Transfer-Encoding: chunked\r\n\r\n4;\u0000\r\nabcd\r\n0\r\n\r\n`],
  ['no Host', `GET / HTTP/1.1\r\nX-Auth-Request-Email: alice@example.com\r\n\r\n`],
])('%s: 400, nothing forwarded', async (_what, bytes) => {
  const before = stack.upstream.received.length;
  const { status } = await stack.send(bytes);
  expect(status).toBe(400);
  expect(stack.upstream.received).toHaveLength(before);
});

test('too long a header block is a 431', async () => {
  const before = stack.upstream.received.length;
  const { status, reply } = await stack.send(http11([HOST, ALICE, ['X-Pad', 'a'.repeat(5000)]]));
  expect(status).toBe(431);
  expect(reply).toContain('{"error":"too_many_headers"}');
  expect(stack.upstream.received).toHaveLength(before);
});

test('too many header lines is a 431, however the lines are spelled', async () => {
  const before = stack.upstream.received.length;
  // 21 lines with Connection: close; the identity comes last so truncation could not hide it.
  const padding = Array.from({ length: 18 }, (_, i) => [`X-Pad-${i}`, 'v'] as const);
  const { status, reply } = await stack.send(http11([HOST, ...padding, ALICE]));
  expect(status).toBe(431);
  expect(reply).toContain('{"error":"too_many_headers"}');
  expect(stack.upstream.received).toHaveLength(before);
  // At the limit it passes.
  const { status: ok } = await stack.send(http11([HOST, ...padding.slice(1), ALICE]));
  expect(ok).toBe(200);
});

test('a chunked body that contains a request stays one request with that body', async () => {
  const before = stack.upstream.received.length;
  const body = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;
  const { status } = await stack.send(`${head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body}`);
  expect(status).toBe(200);
  expect(stack.upstream.received).toHaveLength(before + 1);
  const got = stack.upstream.received.at(-1)!;
  expect(got).toMatchObject({ method: 'POST', url: '/submit', body: SMUGGLED });
  expect(got.headers['x-forwarded-user']).toBe('alice@example.com');
});

test('a Content-Length body that contains a request stays one request with that body', async () => {
  const before = stack.upstream.received.length;
  const { status } = await stack.send(`${head}Content-Length: ${SMUGGLED.length}\r\nConnection: close\r\n\r\n${SMUGGLED}`);
  expect(status).toBe(200);
  expect(stack.upstream.received).toHaveLength(before + 1);
  expect(stack.upstream.received.at(-1)).toMatchObject({ url: '/submit', body: SMUGGLED });
});

test('pipelined requests are each decided on their own', async () => {
  const before = stack.upstream.received.length;
  const first = http11([HOST, ALICE], { target: '/one', keepAlive: true });
  const second = http11([HOST, ['X_Auth_Request_Email', 'admin@example.com']], { target: '/two' });
  const { reply } = await stack.send(first + second);
  const statuses = [...reply.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
  expect(statuses).toEqual([200, 401]);
  expect(stack.upstream.received.slice(before).map((r) => r.url)).toEqual(['/one']);
});

/** Waits until a request sent after `sent` on a new connection has reached the gateway: anything of `sent` would have too. */
async function settled(): Promise<void> {
  const { status } = await stack.send(http11([HOST, ALICE], { target: '/sentinel' }));
  expect(status).toBe(200);
}

test('requests pipelined ahead of bytes the parser refuses get no answer, so none reaches the gateway', async () => {
  const before = stack.upstream.received.length;
  const body = http11([HOST, ALICE, ['Transfer-Encoding', 'chunked']], { target: '/ahead-1', keepAlive: true, body: '2\r\nab\r\n0\r\n\r\n' });
  const closing = http11([HOST, ALICE], { target: '/ahead-2' });
  // Bytes after a request that said Connection: close: the parser refuses the connection.
  const { reply } = await stack.send(body + closing + SMUGGLED);
  expect([...reply.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]))).toEqual([400]);
  await settled();
  expect(stack.upstream.received.slice(before).map((r) => r.url)).toEqual(['/sentinel']);
});

const allowedCount = async () => sample(await scrape(stack.sc.adminUrl), 'trusted_proxy_decisions_total', { mode: 'inline', result: 'allowed' });

test('requests pipelined behind a refusal that closes the connection are never forwarded, nor counted as decided', async () => {
  const before = stack.upstream.received.length;
  const allowedBefore = await allowedCount();
  // A refused request with a body closes its connection (its body is never read).
  const refused = http11([HOST, ['Content-Length', '2']], { target: '/refused', keepAlive: true, body: 'ab' });
  const behind = http11([HOST, ALICE], { target: '/behind' });
  const { reply } = await stack.send(refused + behind);
  expect([...reply.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]))).toEqual([401]);
  await settled();
  expect(stack.upstream.received.slice(before).map((r) => r.url)).toEqual(['/sentinel']);
  // Both arrive in one read and are decided in one batch; only the sentinel's decision is recorded.
  expect((await allowedCount()) - allowedBefore).toBe(1);
});

test("a client's Connection: close is honoured, and the upstream's hop-by-hop headers stay upstream", async () => {
  const { status, reply } = await stack.send(http11([HOST, ALICE]));
  expect(status).toBe(200);
  const headers = reply.slice(0, reply.indexOf('\r\n\r\n')).toLowerCase();
  expect(headers).toContain('\r\nconnection: close');
  expect(headers).not.toContain('keep-alive');
});

test('identity headers sent as chunked trailers never become request headers upstream', async () => {
  const before = stack.upstream.received.length;
  const trailers = 'X-Auth-Request-Email: admin@example.com\r\nX-Forwarded-User: admin\r\nX-Trusted-Proxy-Assertion: forged\r\n';
  const { status } = await stack.send(`${head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n0\r\n${trailers}\r\n`);
  expect(status).toBe(200);
  expect(stack.upstream.received).toHaveLength(before + 1);
  const got = stack.upstream.received.at(-1)!;
  expect(got.body).toBe('abcd');
  expect(stack.upstream.valuesOf(got, 'x-forwarded-user')).toEqual(['alice@example.com']);
  expect(got.rawHeaders.join('\n')).not.toMatch(/admin|forged/);
});
