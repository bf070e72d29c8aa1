// Fuzzing the boundary two ways. In-process: fast-check drives the whole decision and
// sanitising path (decide() then upstreamHeaders(), the exact headers the gateway is sent)
// with any header bytes Node's strict parser can deliver, either mode, any target and
// upgrade, and shrinks any counterexample. Over a raw socket: random header lines sent to a
// live sidecar, with the recording upstream as the oracle.
import { createHmac } from 'node:crypto';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import fc from 'fast-check';
import { recordSection, table } from './report.js';
import { profile } from './profile.js';
import { decide, type Decision } from '../../src/decision/decide.js';
import { upstreamHeaders } from '../../src/decision/gateway-headers.js';
import { normaliseName } from '../../src/request/protected.js';
import { headerPairs, headerValues } from '../support/header-lines.js';
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, TEST_KEY } from '../support/sidecar.js';
import { startRecordingUpstream } from '../../harness/upstream.js';
import { context, facts, KEY } from '../unit/context.js';

const P = profile();
const CONFIG = {
  trust: { cidrs: ['10.0.0.0/8', '2001:db8::/32'] },
  identity: { groupsHeader: 'x-auth-request-groups', emailHeader: 'x-auth-request-user-email' },
  gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin'] } } },
  sanitise: { extraPrefixes: ['x-auth-request-'] },
  forwardAuth: { enabled: true },
};
const ctx = context(CONFIG);
/** Owned names, written out here (not taken from the code under test). */
const OWNED = ['x-auth-request-', 'x-trusted-proxy-assertion', 'x-forwarded-', 'forwarded', 'x-real-ip', 'x-openclaw-scopes'];
const SET_BY_SIDECAR = new Set([
  'x-trusted-proxy-assertion',
  'x-forwarded-user',
  'x-openclaw-scopes',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);
const NAMES = [
  'X-Auth-Request-Email',
  'x-auth-request-email',
  'X_Auth_Request_Email',
  'x.auth.request.email',
  'X-Auth-Request-Groups',
  'X-Auth-Request-User-Email',
  'X-Trusted-Proxy-Assertion',
  'x_trusted_proxy_assertion',
  'X-Forwarded-User',
  'X.Forwarded.User',
  'X-Openclaw-Scopes',
  'X-Forwarded-For',
  'X-Forwarded-Host',
  'X-Forwarded-Proto',
  'X-Forwarded-Method',
  'X-Forwarded-Uri',
  'Forwarded',
  'X-Real-IP',
  'Host',
  'Connection',
  'Upgrade',
  'Keep-Alive',
  'TE',
  'Transfer-Encoding',
  'Content-Length',
  'Origin',
  'X-Request-Id',
  'Cookie',
  '__proto__',
  'constructor',
  'X-Custom',
];
// What Node's strict parser lets through in a value: HTAB, SP, visible ASCII, obs-text.
const VALUE_BYTES = ['\t', ' ', ',', ';', ':', '@', '"', '\\', '=', '/', '.', 'a', 'Z', '0', '\u0080', '\u0085', '\u00c3', '\u00a9', '\u00ff', '\u00e2'];
const value = fc.oneof(
  fc.array(fc.constantFrom(...VALUE_BYTES), { maxLength: 20 }).map((cs) => cs.join('')),
  fc.constantFrom(
    'alice@example.com',
    'mallory@evil.example',
    'admins',
    'operators, admins',
    'websocket',
    'h2c',
    'close, X-Auth-Request-Email',
    'keep-alive, x_forwarded_user',
    '10.1.2.3',
    '203.0.113.9, 10.0.0.1',
    '::ffff:127.0.0.1',
    'https',
    'GET',
    '/p?q',
    'http://evil/x',
    'gw.example',
  ),
);
const tokenName = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}$/);
const header = fc.tuple(fc.oneof(fc.constantFrom(...NAMES), tokenName), value);
const input = fc.record({
  peer: fc.constantFrom(
    '10.1.2.3',
    '10.9.9.9',
    '::ffff:10.4.4.4',
    '2001:db8::1',
    '10.1.2.3',
    '::ffff:10.1.2.3',
    '2001:db8::7',
    '127.0.0.1',
    '::1',
    '::ffff:127.0.0.1',
    '0.0.0.0',
    '203.0.113.9',
    '::ffff:203.0.113.9',
  ),
  mode: fc.constantFrom('inline' as const, 'inline' as const, 'forward-auth' as const),
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'OPTIONS'),
  target: fc.constantFrom('/', '/a/b?c=d', '/', '/x/y', '/forward-auth', 'http://evil.example/x', '*', 'gw.example:443', '/x#frag'),
  user: fc.option(fc.oneof({ weight: 3, arbitrary: fc.constant('alice@example.com') }, { weight: 2, arbitrary: value }), { freq: 8 }),
  forwarded: fc.option(fc.tuple(fc.constantFrom('GET', 'post', ' DELETE ', 'G T', ''), fc.constantFrom('/a?b', ' /x ', 'http://evil/x', '/p#f', '')), {
    freq: 4,
  }),
  headers: fc.array(header, { maxLength: 14 }),
  at: fc.nat(),
  upgrade: fc.boolean(),
  // HTTP/1.1 always sends one (without a well-formed one the request is refused).
  host: fc.option(
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('gw.example', 'GW.example:8443', '[2001:db8::1]:443') },
      { weight: 1, arbitrary: fc.constantFrom('gw.example.', 'evil.example/x') },
    ),
    { freq: 20 },
  ),
});

/** Optional white space as HTTP defines it (SP, HTAB), written out here: 0xA0 is part of a value. */
const ows = (v: string) => v.replace(/^[ \t]+|[ \t]+$/g, '');

type Generated = typeof input extends fc.Arbitrary<infer T> ? T : never;

const anyBytes = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((n) => String.fromCharCode(n)), minLength, maxLength });

const lines = (raw: string[], name: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name);

function checkAllowed(raw: string[], r: Generated, d: Decision & { ok: true }): void {
  const out = upstreamHeaders(d, ctx.rules);
  for (const [name, v] of headerPairs(out)) {
    // Everything sent upstream is a header Node will write as is: no injection possible.
    validateHeaderName(name);
    validateHeaderValue(name, v);
    const n = normaliseName(name);
    if (OWNED.some((p) => n.startsWith(p)) && !SET_BY_SIDECAR.has(name)) throw new Error(`client copy of owned ${name} forwarded`);
  }
  // The identity is the one canonical line, whatever aliases or nominations surround it.
  const userLines = lines(raw, 'x-auth-request-email');
  if (userLines.length !== 1 || d.identity.userRaw !== ows(userLines[0]!)) throw new Error('identity not the one canonical line');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(d.identity.user)) throw new Error('control character in the identity');
  if (d.upgrade !== undefined && (!r.upgrade || ows(d.upgrade).toLowerCase() !== 'websocket')) throw new Error('non-WebSocket upgrade allowed');
  if (!r.upgrade && headerValues(out, 'upgrade').length > 0) throw new Error('Upgrade sent upstream for a plain request');
  if (!d.target.startsWith('/')) throw new Error(`target ${d.target} is not origin-form`);
  // The assertion: HS256 over its own bytes with the key, claims as decided.
  const tokens = headerValues(out, 'x-trusted-proxy-assertion');
  if (tokens.length !== 1) throw new Error(`${tokens.length} assertions sent`);
  const token = tokens[0]!;
  const [h, p, s] = token.split('.');
  if (createHmac('sha256', KEY).update(`${h}.${p}`).digest('base64url') !== s) throw new Error('assertion does not verify');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  if (claims['sub'] !== d.identity.user) throw new Error('sub is not the identity');
  const expectedMethod = r.mode === 'inline' ? r.method : ows(lines(raw, 'x-forwarded-method')[0]!).toUpperCase();
  if (claims['htm'] !== expectedMethod) throw new Error(`htm ${String(claims['htm'])}, expected ${expectedMethod}`);
  const target = r.mode === 'inline' ? r.target : ows(lines(raw, 'x-forwarded-uri')[0]!);
  if (!String(claims['htu']).endsWith(target)) throw new Error('htu does not name the target, query included');
}

test(`decide() and upstreamHeaders(): ${P.fuzzRuns} generated requests, no forged identity, owned header, injection or unsigned request`, () => {
  let allowed = 0;
  let refused = 0;
  const started = Date.now();
  fc.assert(
    fc.property(input, (r) => {
      const raw = r.headers.flat();
      if (r.user !== null) raw.splice(2 * (r.at % (r.headers.length + 1)), 0, 'X-Auth-Request-Email', r.user);
      if (r.forwarded !== null) raw.push('X-Forwarded-Method', r.forwarded[0], 'X-Forwarded-Uri', r.forwarded[1]);
      if (r.host !== null) raw.unshift('Host', r.host);
      const d = decide(facts(raw, { peer: r.peer, method: r.method, target: r.target, mode: r.mode, upgrade: r.upgrade }), ctx);
      const trusted = ctx.trusted.lookup(r.peer).trusted;
      if (!d.ok) {
        refused++;
        if ('assertion' in d) throw new Error('a refusal carries an assertion');
        return;
      }
      if (!trusted) throw new Error(`untrusted peer ${r.peer} allowed`);
      allowed++;
      checkAllowed(raw, r, d);
    }),
    { numRuns: P.fuzzRuns },
  );
  const seconds = (Date.now() - started) / 1000;
  // The generator must reach the allowed branch often, or the property proves little.
  expect(allowed).toBeGreaterThan(P.fuzzRuns / 20);
  recordSection(
    'fuzz',
    [
      `fast-check, ${P.fuzzRuns.toLocaleString('en')} generated requests through \`decide()\` and \`upstreamHeaders()\` in-process`,
      `(${seconds.toFixed(1)} s; shrinking on failure). Headers mix every owned name and its aliases, hop-by-hop and`,
      "Connection nominations, duplicates and any value bytes Node's strict parser delivers; peers are trusted, mapped,",
      'loopback, unspecified and untrusted; both modes; origin-, absolute-, asterisk- and authority-form targets.',
      '',
      table(
        ['property', 'cases', 'counterexamples'],
        [
          ['untrusted peers refused; refusals carry no assertion', refused + allowed, 0],
          ['allowed: every upstream header valid for Node to write (no CR/LF/NUL injection)', allowed, 0],
          ['allowed: no client copy of an owned header upstream', allowed, 0],
          ['allowed: identity is the single canonical line, no control characters', allowed, 0],
          ['allowed: HS256 assertion verifies, binds sub, method and target; origin-form only; WebSocket the only upgrade', allowed, 0],
        ],
      ),
      '',
      `Allowed ${allowed.toLocaleString('en')}, refused ${refused.toLocaleString('en')}.`,
    ].join('\n'),
  );
}, 600_000);

test(`${P.rawFuzzRequests} random header lines through a raw socket to a live sidecar: nothing forged reaches the upstream`, async () => {
  const upstream = await startRecordingUpstream();
  const sc = await startSidecar(upstream.url, { sanitise: { extraPrefixes: ['x-auth-request-'] }, gateway: { scopesHeader: 'x-openclaw-scopes' } });
  try {
    const rng = fc.sample(
      fc.array(
        fc.tuple(
          fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...NAMES) }, { weight: 3, arbitrary: tokenName }, { weight: 1, arbitrary: anyBytes(1, 12) }),
          fc.oneof({ weight: 4, arbitrary: value }, { weight: 1, arbitrary: anyBytes(0, 24) }),
          fc.constantFrom(': ', ': ', ':', ':\t', ' : ', '\t:'),
          fc.constantFrom('\r\n', '\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r\n ', '\r\n\t', '\r'),
        ),
        { minLength: 1, maxLength: 6 },
      ),
      { numRuns: P.rawFuzzRequests, seed: 7 },
    );
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < rng.length) {
        const i = next++;
        const extra = rng[i]!.map(([n, v, sep, eol]) => `${n.replace(/[\r\n]/g, '')}${sep}${v.replace(/[\r\n]/g, '')}${eol}`).join('');
        const bytes = Buffer.from(
          `GET /fuzz/${i} HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\n${extra}Connection: close\r\n\r\n`,
          'latin1',
        );
        const status = statusOf(await rawRequest(sc.port, bytes, '127.0.0.1', 2000));
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    // The sidecar still serves, and everything the upstream got is the sidecar's own.
    expect(statusOf(await rawRequest(sc.port, 'GET /after HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\nConnection: close\r\n\r\n'))).toBe(
      200,
    );
    const bad: string[] = [];
    for (const rec of upstream.received) {
      const token = upstream.valuesOf(rec, 'x-trusted-proxy-assertion');
      if (token.length !== 1) {
        bad.push(`${rec.url}: ${token.length} assertions`);
        continue;
      }
      const [h, p, s] = token[0]!.split('.');
      if (createHmac('sha256', TEST_KEY).update(`${h}.${p}`).digest('base64url') !== s) bad.push(`${rec.url}: assertion does not verify`);
      const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
      // A trusted peer's well-formed X-Forwarded-Proto/Host are honoured, so the binding to
      // check is the one a gateway recomputes from the headers it received.
      const host = String(rec.headers['x-forwarded-host'] ?? rec.headers.host).toLowerCase();
      const htu = `${String(rec.headers['x-forwarded-proto'])}://${host}${rec.url}`;
      if (claims['sub'] !== 'alice@example.com' || claims['htu'] !== htu) bad.push(`${rec.url}: claims ${p}`);
      if (JSON.stringify(upstream.valuesOf(rec, 'x-forwarded-user')) !== '["alice@example.com"]') bad.push(`${rec.url}: plain user`);
      for (let i = 0; i < rec.rawHeaders.length; i += 2) {
        const n = normaliseName(rec.rawHeaders[i]!.toLowerCase());
        if (OWNED.some((o) => n.startsWith(o)) && !SET_BY_SIDECAR.has(rec.rawHeaders[i]!.toLowerCase())) bad.push(`${rec.url}: ${rec.rawHeaders[i]}`);
      }
    }
    expect(bad).toEqual([]);
    const received = upstream.received.filter((r) => r.url.startsWith('/fuzz/')).length;
    expect({ received, statuses: [...statuses] }).toEqual({ received: statuses.get(200) ?? 0, statuses: [...statuses] });
    recordSection(
      'raw-fuzz',
      [
        `${P.rawFuzzRequests.toLocaleString('en')} requests (fixed seed) to a live sidecar over raw sockets, each with 1–6 random header lines:`,
        'random bytes 0–255 in names and values, separators with spaces and tabs, CRLF, bare LF, bare CR and obs-fold line ends,',
        'after a valid identity line. The recording upstream is the oracle.',
        '',
        table(
          ['answer', 'requests'],
          [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => [s === 0 ? 'no answer' : String(s), n]),
        ),
        '',
        table(
          ['check', 'result'],
          [
            ['requests at the upstream', received],
            ['… each matching a 200 the sidecar answered', received === (statuses.get(200) ?? 0) ? 'yes' : 'no'],
            ['… without exactly one verifying assertion for its own path and user, or with a client copy of an owned header', bad.length],
            ['sidecar still serving afterwards', 'yes'],
          ],
        ),
      ].join('\n'),
    );
  } finally {
    await sc.stop();
    await upstream.close();
  }
}, 300_000);
