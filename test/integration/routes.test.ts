// Machine routes on a running sidecar: a webhook passes with no SSO identity and its own
// token, within the route's rate per source and body limit; a forged identity and a path
// that reads two ways get nothing through; a reload that removes the route closes it.
import { RawClient, rawRequest, statuses, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { answerWithLength, startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const HOOKS = { name: 'hooks', path: '/hooks', methods: ['POST'], mode: 'machine' as const, maxBodyBytes: 64, requestsPerMinutePerSource: 3 };
let upstream: RecordingUpstream;
let sc: TestSidecar;
beforeEach(async () => {
  upstream = await startRecordingUpstream(answerWithLength);
  sc = await startSidecar(upstream.url, { routes: [HOOKS] }, { configFile: true });
});
afterEach(async () => {
  await sc.stop();
  await upstream.close();
});

const hook = (target: string, body = '{}', extra = '') =>
  `POST ${target} HTTP/1.1\r\nHost: gw.example\r\nAuthorization: Bearer hook-token\r\n${extra}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;

test('a hook with no SSO identity reaches the gateway with its own token, no user and a route assertion', async () => {
  const reply = await rawRequest(sc.port, hook('/hooks/wake', '{}', 'X-Auth-Request-Email: admin@example.com\r\nX-Forwarded-User: admin@example.com\r\n'));
  expect(statusOf(reply)).toBe(200);
  const got = upstream.received.at(-1)!;
  expect(got.url).toBe('/hooks/wake');
  expect(upstream.valuesOf(got, 'authorization')).toEqual(['Bearer hook-token']);
  expect(upstream.valuesOf(got, 'x-forwarded-user')).toEqual([]);
  expect(upstream.valuesOf(got, 'x-auth-request-email')).toEqual([]);
  const claims = JSON.parse(Buffer.from(upstream.valuesOf(got, 'x-trusted-proxy-assertion')[0]!.split('.')[1]!, 'base64url').toString()) as Record<
    string,
    unknown
  >;
  expect(claims).toMatchObject({ route: 'hooks', sub: 'route:hooks', htm: 'POST', htu: 'http://gw.example/hooks/wake' });
});

test.each(['/hooks/../admin', '/hooks/%2e%2e/admin', '//hooks/wake', '/hooks;x/wake', '/hooks/wake/.'])(
  'a path that reads two ways, %s, needs an SSO identity and reaches nothing',
  async (target) => {
    const before = upstream.received.length;
    expect(statusOf(await rawRequest(sc.port, hook(target)))).toBe(401);
    // A request that is let through proves the refusal above was delivered to a working sidecar.
    expect(statusOf(await rawRequest(sc.port, hook('/hooks/wake')))).toBe(200);
    expect(upstream.received.slice(before).map((r) => r.url)).toEqual(['/hooks/wake']);
  },
);

test("the route's rate per source: past it 429 until the bucket refills, other paths unaffected", async () => {
  const answers = [];
  for (let i = 0; i < 5; i++) answers.push(statusOf(await rawRequest(sc.port, hook(`/hooks/n${i}`))));
  expect(answers).toEqual([200, 200, 200, 429, 429]);
  expect(upstream.received.map((r) => r.url)).toEqual(['/hooks/n0', '/hooks/n1', '/hooks/n2']);
  const user = await rawRequest(sc.port, 'GET /chat HTTP/1.1\r\nHost: gw.example\r\nX-Auth-Request-Email: alice@example.com\r\nConnection: close\r\n\r\n');
  expect(statusOf(user)).toBe(200);
});

test("the route's body limit: over it 413, by declared length or as it streams, nothing forwarded", async () => {
  expect(statusOf(await rawRequest(sc.port, hook('/hooks/big', 'x'.repeat(65))))).toBe(413);
  const client = await RawClient.connect(sc.port);
  client.write('POST /hooks/chunked HTTP/1.1\r\nHost: gw.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n');
  client.write(`41\r\n${'x'.repeat(65)}\r\n0\r\n\r\n`);
  const reply = await client.receive((t) => statuses(t).length > 0 && t.includes('}'), 'the answer');
  client.destroy();
  expect(statuses(reply)).toEqual([413]);
  expect(upstream.received.filter((r) => r.url === '/hooks/big')).toEqual([]);
  expect(statusOf(await rawRequest(sc.port, hook('/hooks/fits', 'x'.repeat(64))))).toBe(200);
});

test('a reload without the route closes it at once: the next hook needs an SSO identity', async () => {
  expect(statusOf(await rawRequest(sc.port, hook('/hooks/wake')))).toBe(200);
  sc.writeConfig({ ...sc.input, routes: [] });
  await waitFor(() => sc.sidecar.runtime.config.routes.length === 0, 'the reload');
  expect(statusOf(await rawRequest(sc.port, hook('/hooks/wake')))).toBe(401);
});

describe('forward-auth: the same routes, read from the forwarded method and URI', () => {
  let fa: TestSidecar;
  beforeAll(async () => {
    // Forward-auth answers the front proxy; nothing is forwarded, so no gateway is needed.
    fa = await startSidecar('http://127.0.0.1:9', {
      forwardAuth: { enabled: true },
      routes: [HOOKS, { name: 'admin', path: '/admin', mode: 'deny' }],
      gateway: { userHeader: 'x-forwarded-user' },
    });
  });
  afterAll(() => fa.stop());
  const ask = (method: string, uri: string, extra = '') =>
    rawRequest(
      fa.port,
      `GET /forward-auth HTTP/1.1\r\nHost: gw.example\r\nX-Forwarded-Method: ${method}\r\nX-Forwarded-Uri: ${uri}\r\nX-Forwarded-Host: gw.example\r\nX-Forwarded-Proto: https\r\n${extra}Connection: close\r\n\r\n`,
    );

  test('a hook is granted with an assertion naming the route and no user; past its rate, 403 (nginx turns 429 into 500)', async () => {
    const granted = await ask('POST', '/hooks/wake', 'X-Auth-Request-Email: admin@example.com\r\n');
    expect(statusOf(granted)).toBe(200);
    expect(granted.toLowerCase()).not.toContain('x-forwarded-user:');
    const assertion = /x-trusted-proxy-assertion: ([^\r\n]+)/i.exec(granted)![1]!;
    expect(JSON.parse(Buffer.from(assertion.split('.')[1]!, 'base64url').toString())).toMatchObject({
      route: 'hooks',
      htm: 'POST',
      htu: 'https://gw.example/hooks/wake',
    });
    const more = [await ask('POST', '/hooks/a'), await ask('POST', '/hooks/b'), await ask('POST', '/hooks/c')].map(statusOf);
    expect(more).toEqual([200, 200, 403]);
  });

  test('a deny route is 403, a two-way path and another method are not granted', async () => {
    expect(statusOf(await ask('GET', '/%61dmin', 'X-Auth-Request-Email: alice@example.com\r\n'))).toBe(403);
    expect(statusOf(await ask('POST', '/hooks/../x'))).toBe(401);
    expect(statusOf(await ask('GET', '/hooks/wake'))).toBe(403);
  });
});
