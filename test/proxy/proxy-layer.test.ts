// The proxy layer on its own (src/proxy/forward.ts, src/gateway/, respond.ts), on real
// loopback sockets, for the sidecar's data plane and the undici pool it replaced (the same
// tests must pass through both): a Node server hands every request to the forwarder and every upgrade to
// relayUpgrade() with the client's header lines (less hop-by-hop) and no decision in
// between, in front of a gateway scripted on a raw socket, so each test chooses exactly
// the bytes the gateway sends: informational answers, trailers, resets, silence.
import http, { type IncomingMessage, type Server } from 'node:http';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { configSchema } from '../../src/config/schema.js';
import { gatewayEndpoint } from '../../src/gateway/endpoint.js';
import { exchangeFailure, upstreamErrorKind } from '../../src/gateway/errors.js';
import { relayUpgrade } from '../../src/gateway/upgrade.js';
import { PinnedForwarder, type Forwarder } from '../../src/proxy/forward.js';
import { rejectUpgrade, sendJson } from '../../src/proxy/respond.js';
import { HOP_BY_HOP } from '../../src/request/protected.js';
import { freePort } from '../../harness/ports.js';
import { answeredWhole, RawClient, statuses } from '../support/raw-client.js';
import { UndiciForwarder } from '../support/undici-forwarder.js';
import { waitFor } from '../../harness/wait.js';

interface Gateway {
  readonly url: string;
  /** Every byte each connection sent the gateway, one string per connection (latin1). */
  readonly received: string[];
  /** Connections that have closed, by index. */
  readonly closed: Set<number>;
  close(): Promise<void>;
}

/** A gateway on a raw socket: `answer` runs once per connection, when its request head is in. */
async function scriptedGateway(answer: (socket: Socket, head: string) => void): Promise<Gateway> {
  const received: string[] = [];
  const closed = new Set<number>();
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((socket) => {
    const index = received.push('') - 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      closed.add(index);
      sockets.delete(socket);
    });
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      received[index] += chunk.toString('latin1');
      if (!answered && received[index]!.includes('\r\n\r\n')) {
        answered = true;
        answer(socket, received[index]!.slice(0, received[index]!.indexOf('\r\n\r\n')));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    closed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

interface Layer {
  readonly port: number;
  /** The gateway statuses forward()/relayUpgrade() reported, and the failures. */
  readonly responses: number[];
  readonly failures: Error[];
  readonly switched: Socket[];
  close(): Promise<void>;
}

const TIMEOUT_MS = 400;

/** The client's header lines as the proxy passes them: names lower-case, hop-by-hop gone. */
function forwardedLines(req: IncomingMessage): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name)) out.push(name, req.rawHeaders[i + 1]!);
  }
  return out.concat('x-proxy-layer', 'on');
}

type Upstream = ReturnType<typeof configSchema.parse>['upstream'];
const DATA_PLANES: [string, (upstream: Upstream) => Forwarder][] = [
  ["the sidecar's gateway connections", () => new PinnedForwarder()],
  ['the undici pool it replaced', (upstream) => new UndiciForwarder(upstream)],
];
let dataPlane = DATA_PLANES[0]![1];

async function startLayer(gatewayUrl: string, limits: { maxBodyBytes?: number } = {}): Promise<Layer> {
  const forwarder = dataPlane(configSchema.parse({ upstream: { url: gatewayUrl } }).upstream);
  const responses: number[] = [];
  const failures: Error[] = [];
  const switched: Socket[] = [];
  const failedAnswer = (err: Error) => {
    failures.push(err);
    const failure = exchangeFailure(err);
    if (failure === 'request_body_stalled' || failure === 'request_body_too_large')
      return { status: failure === 'request_body_stalled' ? 408 : 413, body: `{"error":"${failure}"}` };
    const kind = upstreamErrorKind(failure);
    return { status: kind === 'timeout' ? 504 : 502, body: `{"error":"${kind}"}` };
  };
  const server: Server = http.createServer((req, res) => {
    // The principal a decision would name: here the client says it, in a header of the test's own.
    const principal = String(req.headers['x-test-user'] ?? '');
    const target = {
      endpoint: gatewayEndpoint(gatewayUrl),
      principal,
      connectTimeoutMs: TIMEOUT_MS,
      timeoutMs: TIMEOUT_MS,
      bodyStallMs: TIMEOUT_MS,
      maxBodyBytes: limits.maxBodyBytes ?? 0,
    };
    forwarder.forward(req, res, forwardedLines(req), target, {
      response: (status) => responses.push(status),
      failed: (err) => {
        const { status, body } = failedAnswer(err);
        sendJson(res, status, body, { connection: 'close' });
      },
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const lines = forwardedLines(req).concat('connection', 'upgrade', 'upgrade', 'websocket');
    relayUpgrade(
      req,
      socket,
      head,
      lines,
      { endpoint: gatewayEndpoint(gatewayUrl), connectTimeoutMs: TIMEOUT_MS, timeoutMs: TIMEOUT_MS },
      {
        response: (status) => responses.push(status),
        switched: (upstream) => switched.push(upstream),
        failed: (err) => {
          const { status, body } = failedAnswer(err);
          rejectUpgrade(socket, status, body);
        },
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    responses,
    failures,
    switched,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      forwarder.close();
    },
  };
}

let gateway: Gateway | undefined;
let layer: Layer | undefined;
const clients: RawClient[] = [];
/** Ends the test's clients, layer and gateway (after each test, and between a test's own rounds). */
async function tearDown(): Promise<void> {
  for (const c of clients.splice(0)) c.destroy();
  await layer?.close();
  await gateway?.close();
  layer = gateway = undefined;
}
afterEach(tearDown);

async function setUp(answer: (socket: Socket, head: string) => void, limits?: { maxBodyBytes?: number }): Promise<{ gw: Gateway; proxy: Layer }> {
  gateway = await scriptedGateway(answer);
  layer = await startLayer(gateway.url, limits);
  return { gw: gateway, proxy: layer };
}

async function client(proxy: Layer, bytes = ''): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port);
  clients.push(c);
  if (bytes) c.write(bytes);
  return c;
}

/** The gateway has the whole body ending in `last`, sent with a length or chunked (the data plane picks). */
const bodyDone = (received: string, last: string) => received.endsWith(last) || received.endsWith(`${last}\r\n0\r\n\r\n`);

/** Runs `answer` once the gateway has a whole request body ending in `last`, checked as each of the socket's bytes arrive. */
function afterBody(socket: Socket, last: string, answer: () => void): void {
  const check = () => {
    if (!gateway!.received.some((r) => bodyDone(r, last))) return;
    socket.off('data', check);
    answer();
  };
  // After the script's own listener, which records the bytes.
  socket.on('data', check);
  check();
}

describe.each(DATA_PLANES)('through %s', (_name, make) => {
  beforeAll(() => {
    dataPlane = make;
  });

  describe('a request and its answer', () => {
    test("the target goes byte for byte with the given header lines; the answer comes back less the gateway hop's headers", async () => {
      const { gw, proxy } = await setUp((s) =>
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: y\r\n\r\nok'),
      );
      const c = await client(proxy, 'GET /a%2Fb/../c?x=1&y=%20 HTTP/1.1\r\nHost: gw.example\r\nX-Test: 1\r\nConnection: keep-alive\r\n\r\n');
      const reply = await c.receive(answeredWhole, 'the answer');
      expect(gw.received[0]).toMatch(/^GET \/a%2Fb\/\.\.\/c\?x=1&y=%20 HTTP\/1\.1\r\n/);
      expect(gw.received[0]).toContain('x-test: 1\r\n');
      expect(gw.received[0]).toContain('x-proxy-layer: on\r\n');
      expect(statuses(reply)).toEqual([200]);
      expect(reply).toMatch(/\r\nx-kept: y\r\n/i);
      expect(reply).not.toMatch(/x-hop|keep-alive: timeout/i);
      expect(reply.endsWith('\r\n\r\nok')).toBe(true);
      expect(proxy.responses).toEqual([200]);
    });

    test("header names that are Object.prototype's members are headers like any other, given once or twice", async () => {
      const { proxy } = await setUp((s) => s.write('HTTP/1.1 200 OK\r\nConstructor: a\r\n__proto__: b\r\n__proto__: c\r\nContent-Length: 2\r\n\r\nok'));
      const c = await client(proxy, 'GET / HTTP/1.1\r\nHost: gw\r\n\r\n');
      const reply = await c.receive(answeredWhole, 'the answer');
      expect(statuses(reply)).toEqual([200]);
      expect(reply).toMatch(/\r\nconstructor: a\r\n/i);
      expect(reply).toMatch(/\r\n__proto__: b, c\r\n|\r\n__proto__: b\r\n__proto__: c\r\n/i);
      expect(reply.endsWith('\r\n\r\nok')).toBe(true);
    });

    test('a request body streams to the gateway, by length or chunked, and the response body back', async () => {
      const { gw, proxy } = await setUp((s, head) => {
        const body = head.startsWith('POST /length') ? 'hello' : 'abcdefgh';
        // The answer waits for the whole body to arrive; closing, so the next request takes a
        // new connection (the script answers one per connection).
        afterBody(s, body.slice(-4), () => s.end('HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nyes\r\n0\r\n\r\n'));
      });
      const byLength = await client(proxy, 'POST /length HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n\r\nhello');
      expect(statuses(await byLength.receive((t) => t.includes('yes'), 'the answer'))).toEqual([201]);
      const chunked = await client(proxy, 'POST /chunked HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n');
      chunked.write('4\r\nefgh\r\n0\r\n\r\n');
      expect(statuses(await chunked.receive((t) => t.includes('yes'), 'the answer'))).toEqual([201]);
      // The header's place among the others is the data plane's choice; the length and body are not.
      expect(gw.received[0]).toMatch(/\r\ncontent-length: 5\r\n(?:[\s\S]*\r\n)?\r\nhello$/);
      expect(gw.received[1]).toContain('abcd');
      expect(gw.received[1]).toContain('efgh');
    });

    test("Expect: 100-continue is answered by the sidecar's server; the body reaches the gateway and the expectation does not", async () => {
      const { gw, proxy } = await setUp((s) => {
        const check = () => (gw.received[0]!.endsWith('hello') ? s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n') : setTimeout(check, 5));
        check();
      });
      const c = await client(proxy, 'POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
      await c.receive((t) => t.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 'the invitation to send the body');
      c.write('hello');
      expect(statuses(await c.receive((t) => statuses(t).length === 2, 'the answer'))).toEqual([100, 200]);
      expect(gw.received[0]).not.toMatch(/expect:/i);
    });
  });

  describe('informational answers and trailers, on purpose', () => {
    const hinted = (s: Socket) =>
      s.write(
        'HTTP/1.1 102 Processing\r\n\r\n' +
          'HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload; as=style\r\nX-Other: dropped\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
      );

    test("a 103's Link reaches an HTTP/1.1 client before the response; a 102 does not", async () => {
      const { proxy } = await setUp(hinted);
      const c = await client(proxy, 'GET / HTTP/1.1\r\nHost: gw\r\n\r\n');
      const reply = await c.receive((t) => t.endsWith('ok'), 'the answer');
      expect(statuses(reply)).toEqual([103, 200]);
      expect(reply).toMatch(/^HTTP\/1\.1 103 Early Hints\r\nLink: <\/app\.css>; rel=preload; as=style\r\n\r\n/i);
      expect(reply).not.toContain('X-Other');
    });

    test('an HTTP/1.0 client gets no informational answer at all', async () => {
      const { proxy } = await setUp(hinted);
      const c = await client(proxy, 'GET / HTTP/1.0\r\nHost: gw\r\n\r\n');
      const reply = await c.receive((t) => t.endsWith('ok'), 'the answer');
      expect([...reply.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([200]);
    });

    test("the gateway's response trailers reach the client, less hop-by-hop names; the client's request trailers never reach the gateway", async () => {
      const { gw, proxy } = await setUp((s) =>
        afterBody(s, 'body', () =>
          s.write(
            'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: sha256=abc\r\nKeep-Alive: timeout=1\r\n\r\n',
          ),
        ),
      );
      const c = await client(
        proxy,
        'POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\nX-Auth-Request-Email: admin@example.com\r\nX-Forwarded-User: admin\r\n\r\n',
      );
      const reply = await c.receive((t) => /\r\n0\r\n[\s\S]*\r\n\r\n$/.test(t), 'the answer with its trailers');
      expect(statuses(reply)).toEqual([200]);
      const trailers = reply.slice(reply.lastIndexOf('\r\n0\r\n') + 5);
      expect(trailers).toMatch(/^x-checksum: sha256=abc\r\n\r\n$/i);
      expect(gw.received[0]).toContain('body');
      expect(gw.received[0]).not.toMatch(/admin/);
    });
  });

  describe('the gateway failing', () => {
    test('nothing listening: the exchange fails as refused', async () => {
      const closedPort = await freePort();
      layer = await startLayer(`http://127.0.0.1:${closedPort}`);
      const c = await client(layer, 'GET / HTTP/1.1\r\nHost: gw\r\n\r\n');
      expect(await c.receive(answeredWhole, 'the answer')).toMatch(/^HTTP\/1\.1 502 [\s\S]*\{"error":"refused"\}$/);
      expect(layer.responses).toEqual([]);
    });

    test("no answer within the timeout: the exchange fails as a timeout and the gateway's connection is given up", async () => {
      const { gw, proxy } = await setUp(() => undefined);
      const c = await client(proxy, 'GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n');
      expect(await c.receive(answeredWhole, 'the answer')).toMatch(/^HTTP\/1\.1 504 [\s\S]*\{"error":"timeout"\}$/);
      await waitFor(() => gw.closed.has(0), 'the gateway connection closed');
    });

    test('a reset before the answer fails as reset; a reset mid-body cuts the client off with a short body', async () => {
      const { proxy } = await setUp((s, head) => {
        if (head.startsWith('GET /before')) return void s.resetAndDestroy();
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789', () => setTimeout(() => s.resetAndDestroy(), 20));
      });
      const before = await client(proxy, 'GET /before HTTP/1.1\r\nHost: gw\r\n\r\n');
      expect(await before.receive(answeredWhole, 'the answer')).toMatch(/^HTTP\/1\.1 502 [\s\S]*\{"error":"reset"\}$/);
      const during = await client(proxy, 'GET /during HTTP/1.1\r\nHost: gw\r\n\r\n');
      await during.closed;
      expect(statuses(during.text)).toEqual([200]);
      expect(during.text.slice(during.text.indexOf('\r\n\r\n') + 4)).toBe('0123456789');
    });

    test("the client leaving mid-response ends the gateway's exchange", async () => {
      const { gw, proxy } = await setUp((s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst bytes'));
      const c = await client(proxy, 'GET /long HTTP/1.1\r\nHost: gw\r\n\r\n');
      await c.receive((t) => t.includes('first bytes'), 'the start of the body');
      c.reset();
      await waitFor(() => gw.closed.has(0), 'the gateway connection closed');
    });

    test("a client that stalls mid-body, or sends more than the maximum, fails the exchange with the body limit's code", async () => {
      const { gw, proxy } = await setUp(() => undefined, { maxBodyBytes: 8 });
      const stalled = await client(proxy, 'POST /stall HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\n\r\nabc');
      expect(await stalled.receive(answeredWhole, 'the answer')).toMatch(/^HTTP\/1\.1 408 [\s\S]*request_body_stalled/);
      const large = await client(proxy, 'POST /large HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n');
      expect(await large.receive(answeredWhole, 'the answer')).toMatch(/^HTTP\/1\.1 413 [\s\S]*request_body_too_large/);
      await waitFor(() => gw.closed.size === gw.received.length, 'the gateway connections closed');
    });
  });
});

describe("through the sidecar's gateway connections only", () => {
  beforeAll(() => {
    dataPlane = DATA_PLANES[0]![1];
  });

  /**
   * A gateway whose first connection answers one request, keeps the connection, and resets
   * it when the next request's bytes come, as a gateway closing it as idle just then would.
   */
  const closesAsIdle = () => {
    let connections = 0;
    return (s: Socket) => {
      if (connections++ > 0) return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
      s.once('data', () => s.resetAndDestroy());
    };
  };

  test('the gateway resetting a kept-alive connection as a GET goes out: the GET is sent again, once, on a new connection', async () => {
    const { gw, proxy } = await setUp(closesAsIdle());
    const c = await client(proxy, 'GET /one HTTP/1.1\r\nHost: gw\r\n\r\n');
    await c.receive((t) => t.endsWith('first'), 'the first answer');
    c.write('GET /two HTTP/1.1\r\nHost: gw\r\n\r\n');
    await c.receive((t) => t.endsWith('second'), 'the second answer');
    expect(statuses(c.text)).toEqual([200, 200]);
    // Delivered on the kept connection (which reset), then on a new one.
    expect(gw.received[0]).toContain('GET /two ');
    expect(gw.received[1]).toMatch(/^GET \/two /);
    expect(gw.received).toHaveLength(2);
  });

  test('the same race for a request with a body: not sent again, the client is answered 502', async () => {
    const { gw, proxy } = await setUp(closesAsIdle());
    const c = await client(proxy, 'GET /one HTTP/1.1\r\nHost: gw\r\n\r\n');
    await c.receive((t) => t.endsWith('first'), 'the first answer');
    c.write('POST /two HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\nab');
    await c.receive((t) => t.endsWith('{"error":"reset"}'), 'the refusal');
    expect(statuses(c.text)).toEqual([200, 502]);
    expect(gw.received[0]).toContain('POST /two ');
    expect(gw.received).toHaveLength(1);
  });

  test('the same race for a PUT or DELETE without a body: not sent again (idempotent is not safe), the client is answered 502', async () => {
    for (const method of ['PUT', 'DELETE']) {
      const { gw, proxy } = await setUp(closesAsIdle());
      const c = await client(proxy, 'GET /one HTTP/1.1\r\nHost: gw\r\n\r\n');
      await c.receive((t) => t.endsWith('first'), 'the first answer');
      c.write(`${method} /two HTTP/1.1\r\nHost: gw\r\n\r\n`);
      await c.receive((t) => t.endsWith('{"error":"reset"}'), 'the refusal');
      expect(statuses(c.text)).toEqual([200, 502]);
      expect(gw.received).toHaveLength(1);
      await tearDown();
    }
  });

  /**
   * The third adversarial pass: a gateway whose answer to alice has bytes past its
   * Content-Length that arrive in a later read, written as an answer of their own.
   */
  const leaksIntoTheNextAnswer = () => {
    let connections = 0;
    return (s: Socket) => {
      if (connections++ > 0) return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbob');
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nalice');
      s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nalice-private'));
    };
  };

  test("bytes past the gateway's framing, in a later read, never answer another user's request on the same client connection", async () => {
    const { gw, proxy } = await setUp(leaksIntoTheNextAnswer());
    const c = await client(proxy, 'GET /alice HTTP/1.1\r\nHost: gw\r\nX-Test-User: alice\r\n\r\n');
    await c.receive((t) => t.endsWith('alice'), "alice's answer");
    c.write('GET /bob HTTP/1.1\r\nHost: gw\r\nX-Test-User: bob\r\n\r\n');
    await c.receive((t) => t.endsWith('bob'), "bob's answer, from a connection of his own");
    expect(c.text).not.toContain('alice-private');
    expect(gw.received[0]).not.toContain('/bob');
    expect(gw.received[1]).toMatch(/^GET \/bob /);
  });

  test('after a HEAD, or a 204 framed as if a body followed, the connection carries no other exchange', async () => {
    for (const [request, answer] of [
      ['HEAD /h HTTP/1.1\r\nHost: gw\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n'],
      ['DELETE /d HTTP/1.1\r\nHost: gw\r\n\r\n', 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n'],
      ['DELETE /d HTTP/1.1\r\nHost: gw\r\n\r\n', 'HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\n'],
    ] as const) {
      let connections = 0;
      const { gw, proxy } = await setUp((s) => {
        if (connections++ > 0) return void s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
        s.write(answer);
        // The body the framing said was not there, once the next request comes.
        s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstale!'));
      });
      const c = await client(proxy, request);
      await c.receive((t) => t.includes('\r\n\r\n'), 'the first answer');
      c.write('GET /next HTTP/1.1\r\nHost: gw\r\n\r\n');
      await c.receive((t) => t.endsWith('next'), 'the next answer, on a new connection');
      expect(c.text).not.toContain('stale!');
      expect(gw.received).toHaveLength(2);
      await tearDown();
    }
  });

  test('an answer framed by Transfer-Encoding reaches the client without the Content-Length beside it', async () => {
    const { proxy } = await setUp((s) =>
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
    );
    const c = await client(proxy, 'GET /te HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    const text = await c.receive((t) => t.endsWith('0\r\n\r\n'), 'the answer, chunked to the client');
    expect(statuses(text)).toEqual([200]);
    expect(text).not.toMatch(/content-length/i);
    expect(text).toContain('5\r\nhello\r\n');
  });

  test('a body the client coded before chunking (gzip, chunked) reaches the gateway with the same codings, its bytes untouched', async () => {
    // The undici pool it replaced dropped the coding (it framed the body itself): the
    // gateway read the compressed bytes as the body.
    const { gw, proxy } = await setUp((s) => afterBody(s, '\x1f\x8b', () => s.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n')));
    const c = await client(proxy, 'POST /coded HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n');
    expect(statuses(await c.receive((t) => t.includes('\r\n\r\n'), 'the answer'))).toEqual([204]);
    expect(gw.received[0]).toMatch(/\r\ntransfer-encoding: gzip, chunked\r\n(?:[\s\S]*\r\n)?\r\n2\r\n\x1f\x8b\r\n0\r\n\r\n$/);
  });
});

const UPGRADE =
  'GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

describe('upgrades', () => {
  test('accepted: the 101 and the bytes either side sent with it pass, then frames flow both ways', async () => {
    const { gw, proxy } = await setUp((s) => {
      s.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nfrom-gateway',
      );
      s.on('data', (d: Buffer) => d.toString('latin1').includes('ping') && s.write('pong'));
    });
    // The client's first frame rides in the same packet as its handshake.
    const c = await client(proxy, `${UPGRADE}early`);
    await c.receive((t) => t.endsWith('from-gateway'), "the switch and the gateway's first bytes");
    expect(statuses(c.text)).toEqual([101]);
    expect(c.text).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n');
    c.write('ping');
    await c.receive((t) => t.endsWith('pong'), "the gateway's answer to a frame");
    expect(gw.received[0]).toMatch(/\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nearlyping$/);
    expect(proxy.switched).toHaveLength(1);
    c.reset();
    await waitFor(() => gw.closed.has(0), 'the gateway side closed with the client');
  });

  test('refused by the gateway: its answer and body reach the client, then the connection ends', async () => {
    const { proxy } = await setUp((s) => s.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nnot for you\n'));
    const c = await client(proxy, UPGRADE);
    await c.closed;
    expect(statuses(c.text)).toEqual([401]);
    expect(c.text).toMatch(/\r\nconnection: close\r\n\r\nnot for you\n$/i);
    expect(proxy.switched).toHaveLength(0);
    expect(proxy.responses).toEqual([401]);
  });

  test("refused by the gateway, whose body then stalls: the client is cut off and the gateway's connection given up at the timeout", async () => {
    const { gw, proxy } = await setUp((s) => s.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\npart of it'));
    const c = await client(proxy, UPGRADE);
    await c.closed;
    expect(statuses(c.text)).toEqual([403]);
    expect(c.text).toMatch(/\r\n\r\npart of it$/);
    await waitFor(() => gw.closed.has(0), 'the gateway connection closed');
  });

  test("refused by the gateway, which then resets mid-body: the client is cut off, nothing of the sidecar's own inside the answer", async () => {
    const { proxy } = await setUp((s) => {
      s.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\npart of it');
      setImmediate(() => s.resetAndDestroy());
    });
    const c = await client(proxy, UPGRADE);
    await c.closed;
    expect(statuses(c.text)).toEqual([403]);
    expect(c.text).toMatch(/\r\n\r\npart of it$/);
    expect(proxy.failures).toEqual([]);
  });

  test("refused by the gateway, and the client leaves during its answer: the gateway's half goes too", async () => {
    const { gw, proxy } = await setUp((s) => s.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\npart of it'));
    const c = await client(proxy, UPGRADE);
    await c.receive((t) => t.endsWith('part of it'), 'the start of the refusal');
    c.reset();
    // Well before the answer's timeout would end it.
    await waitFor(() => gw.closed.has(0), 'the gateway connection closed', TIMEOUT_MS / 2);
    expect(proxy.responses).toEqual([403]);
  });

  test('the gateway silent: the handshake fails as a timeout and the client is answered', async () => {
    const { gw, proxy } = await setUp(() => undefined);
    const c = await client(proxy, UPGRADE);
    await c.closed;
    expect(c.text).toMatch(/^HTTP\/1\.1 504 [\s\S]*\{"error":"timeout"\}$/);
    await waitFor(() => gw.closed.has(0), 'the gateway connection closed');
  });

  test("the client leaving during the handshake takes the gateway's half with it", async () => {
    const { gw, proxy } = await setUp(() => undefined);
    const c = await client(proxy, UPGRADE);
    await waitFor(() => gw.received.length === 1 && gw.received[0]!.includes('\r\n\r\n'), 'the handshake at the gateway');
    c.reset();
    await waitFor(() => gw.closed.has(0), 'the gateway connection closed');
    expect(proxy.failures).toEqual([]);
  });
});
