// The sidecar's data plane (each client connection pinned to a gateway connection of its
// own, answers read by its own parser) against the undici pool it replaced. Two real
// sidecars with one config and one key, each in front of its own recording gateway, get
// the same bytes from the same kind of source: the whole attack corpus from a trusted and an
// untrusted address, then generated requests (any header lines the strict parser lets
// through, bodies by length or chunked, several pipelined on one connection). Each time,
// the clients' statuses must be the same, and the gateways must have received the same
// requests: method, target, every end-to-end header line (names compared lower-case,
// lines of one name in order) and body. What may differ, on purpose: the assertion's
// per-request claims (jti, iat, nbf, exp), the request id the sidecar makes up for each
// request (22 base64url characters) and the hop's own lines (Connection, and the
// framing: Content-Length and Transfer-Encoding), which are compared by the body they frame,
// and the order in which pipelined requests arrive: the pool sent them on connections of
// their own, at once, so they arrived in any order; the gateway connections send them one
// after the other, and that order (the client's) is checked too. The clients' statuses are
// the final ones: a pipelined request's interim 100 Continue goes out only while its final
// answer has not begun (test/attacks/expect-continue.test.ts), and through the pool that
// answer may come before the responses ahead of it are done.
import fc from 'fast-check';
import { forgedAssertions, loadCorpus, render, statuses, type Materials } from './corpus.js';
import { profile } from './profile.js';
import { rawRequest } from '../support/raw-client.js';
import { startSidecar, TEST_KEY, type TestSidecar } from '../support/sidecar.js';
import { UndiciForwarder } from '../support/undici-forwarder.js';
import { answerWithLength, startRecordingUpstream, type Received, type RecordingUpstream } from '../../harness/upstream.js';

const P = profile();
const TRUSTED = '127.0.0.1';
const UNTRUSTED = '127.0.0.3';
const CONFIG = {
  // Only 127.0.0.1 is trusted: other loopback addresses stand for a rogue pod.
  trust: { allowLoopback: true, cidrs: ['127.0.0.1/32'] },
  identity: { groupsHeader: 'x-auth-request-groups' },
  gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin'] } } },
  sanitise: { extraPrefixes: ['x-auth-request-'] },
  limits: { clientStallTimeoutSeconds: 1 },
  logging: { level: 'warn' as const },
};

interface Side {
  upstream: RecordingUpstream;
  sc: TestSidecar;
}
let sides: Side[] = [];

beforeAll(async () => {
  // The sidecar's own data plane first (the reference side of every comparison), then the undici pool.
  for (const forwarder of [undefined, (u: TestSidecar['config']['upstream']) => new UndiciForwarder(u)]) {
    const upstream = await startRecordingUpstream(answerWithLength);
    const sc = await startSidecar(upstream.url, CONFIG, forwarder ? { forwarder } : {});
    sides.push({ upstream, sc });
  }
});

afterAll(async () => {
  for (const s of sides) {
    await s.sc.stop();
    await s.upstream.close();
  }
  sides = [];
});

const HOP = new Set(['connection', 'content-length', 'transfer-encoding', 'keep-alive']);
const PER_REQUEST_CLAIMS = ['jti', 'iat', 'nbf', 'exp'];

/** What a gateway received, less what may differ on purpose (see the top of the file). */
function normalised(r: Received): unknown {
  const lines: [string, string][] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    const name = r.rawHeaders[i]!.toLowerCase();
    if (HOP.has(name)) continue;
    let value = r.rawHeaders[i + 1]!;
    if (name === 'x-trusted-proxy-assertion') {
      const claims = JSON.parse(Buffer.from(value.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
      for (const claim of PER_REQUEST_CLAIMS) delete claims[claim];
      value = JSON.stringify(claims);
    }
    if (name === 'x-request-id' && /^[A-Za-z0-9_-]{22}$/.test(value)) value = '(made up per request)';
    lines.push([name, value]);
  }
  // Stable: lines of one name keep their order.
  lines.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { method: r.method, url: r.url, lines, body: r.body };
}

const inAnyOrder = (requests: unknown[]) => requests.map((r) => JSON.stringify(r)).sort();

/**
 * Sends the same bytes through both sidecars from `from`; both must answer alike and pass on
 * alike. Returns what reached the sidecar's own data plane's gateway, in arrival order.
 */
async function same(bytes: Buffer, from: string, what: string): Promise<Received[]> {
  const before = sides.map((s) => s.upstream.received.length);
  const replies = await Promise.all(sides.map((s) => rawRequest(s.sc.port, bytes, '127.0.0.1', 2000, from)));
  const seen = replies.map((reply) => statuses(reply).filter((status) => status !== 100));
  expect({ what, statuses: seen[1] }).toEqual({ what, statuses: seen[0] });
  const reached = sides.map((s, i) => s.upstream.received.slice(before[i]));
  expect({ what, reached: inAnyOrder(reached[1]!.map(normalised)) }).toEqual({ what, reached: inAnyOrder(reached[0]!.map(normalised)) });
  return reached[0]!;
}

describe('the attack corpus through both data planes', () => {
  const corpus = loadCorpus();
  const USER = 'alice@example.com';
  const EVIL = 'mallory@evil.example';

  test.each([
    ['a trusted proxy', TRUSTED],
    ['a rogue pod', UNTRUSTED],
  ])('from %s: the same answers, the same requests at the gateway', async (_name, from) => {
    let replay = 'x.y.z';
    let reachedAny = 0;
    for (const c of corpus) {
      const materials: Materials = {
        target: `/corpus/${c.id}`,
        host: 'app.example',
        cookie: 'session',
        user: USER,
        evil: EVIL,
        addresses: { ING: TRUSTED, POD: '127.0.0.2', ROGUE: UNTRUSTED },
        assertions: forgedAssertions(TEST_KEY, EVIL, replay),
      };
      reachedAny += (await same(render(c, materials), from, `${c.id} (${c.title})`)).length;
      // A real assertion, once one has been issued, to replay in the later cases.
      const last = sides[0]!.upstream.received.at(-1);
      if (last) replay = sides[0]!.upstream.valuesOf(last, 'x-trusted-proxy-assertion')[0] ?? replay;
    }
    // The corpus was delivered: from the trusted proxy its controls reached both gateways; from the rogue pod nothing did.
    if (from === TRUSTED) expect(reachedAny).toBeGreaterThan(10);
    else expect(reachedAny).toBe(0);
  });
});

describe('generated requests through both data planes', () => {
  const NAMES = [
    'X-Auth-Request-User',
    'X-Auth-Request-Email',
    'x_auth_request_user',
    'X-Auth-Request-Groups',
    'X-Trusted-Proxy-Assertion',
    'X-Forwarded-User',
    'X-Forwarded-For',
    'X-Forwarded-Host',
    'Forwarded',
    'X-Real-IP',
    'X-Openclaw-Scopes',
    'Connection',
    'Keep-Alive',
    'TE',
    'Trailer',
    'Upgrade',
    'Expect',
    'Origin',
    'Cookie',
    'X-Custom',
    'Accept-Encoding',
    'Cache-Control',
  ];
  const VALUE = fc.oneof(
    fc.constantFrom(
      'alice@example.com',
      'mallory@evil.example',
      'admins',
      'close',
      'keep-alive',
      'X-Auth-Request-User',
      'trailers',
      '100-continue',
      '10.0.0.1',
      'gzip',
    ),
    fc.stringMatching(/^[\x21-\x7e\x80-\xff]([\t\x20-\x7e\x80-\xff]{0,14}[\x21-\x7e\x80-\xff])?$/),
  );
  const REQUEST = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'),
    target: fc.constantFrom('/', '/a/b?c=d', '/%2e%2e/admin', '/x?y=%00', '/forward-auth', '/p;q'),
    identity: fc.option(fc.constantFrom('alice@example.com', 'bob@example.com'), { freq: 6 }),
    groups: fc.option(fc.constantFrom('admins', 'operators, admins', 'users'), { freq: 2 }),
    lines: fc.array(fc.tuple(fc.constantFrom(...NAMES), VALUE), { maxLength: 6 }),
    body: fc.option(fc.tuple(fc.constantFrom('length', 'chunked'), fc.string({ maxLength: 64 }), fc.array(fc.nat({ max: 63 }), { maxLength: 3 })), { freq: 3 }),
  });
  type Generated = typeof REQUEST extends fc.Arbitrary<infer T> ? T : never;

  function bytes(r: Generated, last: boolean): string {
    let text = `${r.method} ${r.target} HTTP/1.1\r\nHost: app.example\r\n`;
    if (r.identity) text += `X-Auth-Request-Email: ${r.identity}\r\n`;
    if (r.groups) text += `X-Auth-Request-Groups: ${r.groups}\r\n`;
    for (const [n, v] of r.lines) text += `${n}: ${v}\r\n`;
    if (last) text += 'Connection: close\r\n';
    if (!r.body) return `${text}\r\n`;
    const [framing, body, cuts] = r.body;
    if (framing === 'length') return `${text}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;
    text += 'Transfer-Encoding: chunked\r\n\r\n';
    let from = 0;
    for (const cut of [...new Set(cuts.filter((c) => c > 0 && c < body.length))].sort((a, b) => a - b).concat(body.length)) {
      if (cut > from) text += `${(cut - from).toString(16)}\r\n${body.slice(from, cut)}\r\n`;
      from = cut;
    }
    return `${text}0\r\n\r\n`;
  }

  test('one to three requests on a connection, pipelined, from the trusted proxy', async () => {
    let delivered = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(REQUEST, { minLength: 1, maxLength: 3 }), async (requests) => {
        const text = requests.map((r, i) => bytes(r, i === requests.length - 1)).join('');
        const reached = await same(Buffer.from(text, 'latin1'), TRUSTED, text);
        delivered += reached.length;
        // Through the gateway connections, in the order the client sent them.
        let next = 0;
        for (const r of reached) {
          while (next < requests.length && `${requests[next]!.method} ${requests[next]!.target}` !== `${r.method} ${r.url}`) next++;
          expect({ text, arrived: reached.map((x) => `${x.method} ${x.url}`), inOrder: next < requests.length }).toMatchObject({ inOrder: true });
          next++;
        }
      }),
      { numRuns: P.differentialRuns },
    );
    // The generated requests did reach the gateways (most carry an identity).
    expect(delivered).toBeGreaterThan(P.differentialRuns / 2);
  });
});
