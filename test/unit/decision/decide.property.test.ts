// For any inbound header list and any source address: untrusted sources are refused; an
// allowed request reaches the gateway with no client-supplied copy of a header the
// sidecar owns, and with an assertion that verifies and names the accepted identity.
// FAST_CHECK_RUNS raises the number of runs for a longer soak.
import fc from 'fast-check';
import { targetUri } from '../../../src/assertion/claims.js';
import { verifyAssertion } from '../../../src/assertion/verify.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import { decide } from '../../../src/decision/decide.js';
import { upstreamHeaders } from '../../../src/decision/gateway-headers.js';
import { HeaderNames } from '../../../src/request/headers.js';
import { pathOf } from '../../../src/request/request.js';
import { HOP_BY_HOP } from '../../../src/request/protected.js';
import { headerPairs, headerValues } from '../../support/header-lines.js';
import { isLoopback, parseAddress } from '../../../src/trust/address.js';
import type { Decision, DecisionContext } from '../../../src/decision/decide.js';
import { context, facts, KEYS, NOW_MS } from '../context.js';

const RUNS = Number(process.env.FAST_CHECK_RUNS ?? 10_000);

const INPUT = {
  trust: { cidrs: ['10.0.0.0/8', '2001:db8::/32'] },
  identity: { emailHeader: 'x-auth-request-user-email', groupsHeader: 'x-auth-request-groups' },
  gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin'], writers: ['operator.write'] } } },
  sanitise: { extraNames: ['x-original-url'] },
} satisfies ConfigInput;
const contexts = { loopback: context(INPUT, { allowLoopback: true }), strict: context(INPUT) };
const ALL_SCOPES = new Set(['operator.read', 'operator.admin', 'operator.write']);
/** What the sidecar itself sets; nothing else of a protected name may reach the gateway. */
const SET_BY_SIDECAR = new Set([
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-user',
  'x-openclaw-scopes',
  'x-trusted-proxy-assertion',
]);
/** Owned names, spelled out here rather than taken from the code under test. */
const OWNED_PREFIXES = [
  'x-auth-request-email',
  'x-auth-request-user-email',
  'x-auth-request-groups',
  'x-trusted-proxy-assertion',
  'x-forwarded-',
  'x-openclaw-scopes',
  'forwarded',
  'x-real-ip',
  'x-original-url',
];
const owned = (lower: string) => OWNED_PREFIXES.some((p) => lower.replace(/[_.]/g, '-').startsWith(p));
const PROTECTED = [
  'x-auth-request-email',
  'x-auth-request-user-email',
  'x-auth-request-groups',
  'x-trusted-proxy-assertion',
  'x-forwarded-user',
  'x-openclaw-scopes',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-method',
  'x-forwarded-uri',
  'x-forwarded-prefix',
  'x-forwarded-port',
  'forwarded',
  'x-real-ip',
  'x-original-url',
];
const OTHER = [
  'host',
  'connection',
  'upgrade',
  'origin',
  'x-request-id',
  'cookie',
  'accept',
  'constructor',
  '__proto__',
  'te',
  'keep-alive',
  'transfer-encoding',
  'trailer',
];

/** A protected name as a client might spell it: `_` or `.` for `-`, any case, maybe a suffix. */
const alias = fc
  .tuple(fc.constantFrom(...PROTECTED), fc.array(fc.nat(5), { minLength: 30, maxLength: 30 }), fc.constantFrom('', '', '-x', '_2'))
  .map(([name, dice, suffix]) =>
    [...(name + suffix)]
      .map((c, i) => {
        const d = dice[i % dice.length]!;
        if (c === '-') return ['-', '_', '.'][d % 3]!;
        return d % 2 === 0 ? c.toUpperCase() : c;
      })
      .join(''),
  );
const token = fc.stringMatching(/^[a-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
const name = fc.oneof(fc.constantFrom(...PROTECTED), alias, fc.constantFrom(...OTHER), token);

const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const address = fc.oneof(
  v4.map((a) => `10.${a.slice(a.indexOf('.') + 1)}`), // trusted
  v4.map((a) => `::ffff:10.${a.slice(a.indexOf('.') + 1)}`), // trusted, mapped
  fc.constantFrom('2001:db8::1', '2001:db8:ffff::9', '2001:db9::1', '203.0.113.7', '::ffff:203.0.113.7'),
  fc.constantFrom('127.0.0.1', '::1', '::ffff:127.0.0.1', '0.0.0.0', '::', '::ffff:0.0.0.0'),
  v4, // mostly untrusted
  fc.constantFrom('', 'garbage', '010.0.0.1', '10.0.0.1:80', '[2001:db8::1]', 'unknown'),
);
const CHARS = [...'abcdefghijklmnopqrstuvwxyzAB@.-_ /:=;"\\', ',', ', ', '\t', '\u00e9', '\u00c3', '\u00a9', '\u0080', '\u00ff', '\u0085'];
const text = fc.array(fc.constantFrom(...CHARS), { maxLength: 24 }).map((cs) => cs.join(''));
const value = fc.oneof(
  text,
  fc.tuple(fc.array(address, { minLength: 1, maxLength: 4 }), fc.constantFrom(',', ', ', ' , ')).map(([as, sep]) => as.join(sep)),
  fc.array(fc.oneof(fc.constantFrom(...PROTECTED), alias, fc.constantFrom('close', 'upgrade', 'keep-alive')), { maxLength: 3 }).map((ns) => ns.join(', ')),
  fc.constantFrom('app.example', 'App.Example:8443', '[2001:db8::1]:443', 'evil.example/x', 'https', 'http', 'websocket', 'admins,writers', 'GET', '/p?q'),
);
const header = fc.tuple(name, value);
const user = fc.oneof(fc.constantFrom('alice@example.com', 'bob', 'Zoë'), text);

const request = fc.record({
  peer: address,
  allowLoopback: fc.boolean(),
  user: fc.option(user, { freq: 4 }),
  at: fc.nat(),
  headers: fc.array(header, { maxLength: 12 }),
  method: fc.constantFrom('GET', 'POST', 'DELETE'),
  target: fc.constantFrom('/', '/a/b?c=d', '/x'),
  // HTTP/1.1 always sends one; without it (or with a malformed one) the request is refused.
  host: fc.option(fc.constantFrom('app.example', 'app.example', 'App.Example:8443', '[2001:db8::1]:443', '[2001:db8::1]:443', 'app.example.'), { freq: 12 }),
});

const linesOf = (raw: string[], lower: string) => raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === lower);

test(`decide() and upstreamHeaders() hold for any headers and source (${RUNS} runs)`, async () => {
  let allowedRuns = 0;
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      const raw = r.headers.flat();
      if (r.user !== null) raw.splice(2 * (r.at % (r.headers.length + 1)), 0, 'X-Auth-Request-Email', r.user);
      if (r.host !== null) raw.unshift('Host', r.host);
      const ctx = r.allowLoopback ? contexts.loopback : contexts.strict;
      const d = decide(facts(raw, { peer: r.peer, method: r.method, target: r.target }), ctx);

      if (!ctx.trusted.lookup(r.peer).trusted) {
        expect(d).toMatchObject({ ok: false, reason: 'untrusted_source', stripped: [] });
        return;
      }
      if (!d.ok) return;
      allowedRuns++;
      const out = upstreamHeaders(d, ctx.rules);
      const inboundValues = new Set(raw.filter((_, i) => i % 2 === 1));
      // Each header the sidecar sets is sent once at most: the client's copies never come along.
      const only = (name: string): string | undefined => {
        const values = headerValues(out, name);
        expect(values.length).toBeLessThanOrEqual(1);
        return values[0];
      };

      for (const [key, v] of headerPairs(out)) {
        expect(key).toBe(key.toLowerCase());
        if (owned(key)) expect(SET_BY_SIDECAR).toContain(key);
        if (HOP_BY_HOP.has(key)) expect(['connection', 'upgrade']).toContain(key);
        if (SET_BY_SIDECAR.has(key) || key === 'x-request-id' || key === 'connection' || key === 'upgrade') continue;
        // Everything else is the client's own line(s), unchanged.
        expect(linesOf(raw, key)).toContain(v);
      }

      // The identity is the one exact user line; aliases never count.
      const userLines = linesOf(raw, 'x-auth-request-email');
      expect(userLines).toHaveLength(1);
      expect(only('x-forwarded-user')).toBe(userLines[0]!.trim());
      expect(d.identity.userRaw).toBe(userLines[0]!.trim());

      // Scopes come from config only; the assertion is the sidecar's own.
      const scopes = only('x-openclaw-scopes');
      expect(typeof scopes).toBe('string');
      for (const s of (scopes as string).split(',').filter(Boolean)) expect(ALL_SCOPES).toContain(s);
      const assertion = only('x-trusted-proxy-assertion')!;
      expect(inboundValues.has(assertion)).toBe(false);
      expect(['http', 'https']).toContain(only('x-forwarded-proto'));
      expect(only('x-request-id')).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);

      // The client address: never loopback; the peer itself or an untrusted entry whose
      // right-hand neighbours were all well-formed trusted hops.
      const xff = only('x-forwarded-for');
      if (xff !== undefined) {
        const parsed = parseAddress(xff);
        expect(parsed).not.toBeNull();
        expect(isLoopback(parsed!)).toBe(false);
        if (xff !== parseAddress(r.peer)!.text) {
          const entries = linesOf(raw, 'x-forwarded-for')
            .join(',')
            .split(',')
            .map((e) => e.trim());
          const at = entries.findLastIndex((e) => parseAddress(e)?.text === xff);
          expect(at).toBeGreaterThanOrEqual(0);
          expect(ctx.trusted.lookup(entries[at]!).trusted).toBe(false);
          for (const e of entries.slice(at + 1)) expect(ctx.trusted.lookup(e).trusted).toBe(true);
        }
      }

      const claims = await verifyAssertion(assertion, {
        keys: KEYS,
        now: () => NOW_MS,
        request: { method: r.method, uri: targetUri(d.proto, d.host, r.target) },
      });
      expect(claims.sub).toBe(d.identity.user);
      expect(claims.email).toBe(d.identity.email);
      expect(claims.groups).toEqual(d.identity.groups);
      expect(claims.cip).toBe(d.client);
    }),
    { numRuns: RUNS },
  );
  // The generator must reach the interesting branch often, or the property proves little.
  expect(allowedRuns).toBeGreaterThan(RUNS / 10);
});

// The header pass keeps only the names the rules say the decision reads. Were one missing
// there, its header would read as absent (a duplicate Host or Origin unnoticed): so the
// decision must be the same as one made with every header kept. Requests here are built
// from the names the decision reads, with values that pass their checks.
test(`decisions read nothing outside the names rules.headers reads (${RUNS} runs)`, () => {
  const narrowing = [
    context({ ...INPUT, identity: { ...INPUT.identity, requiredHeaders: ['accept'] }, listen: { allowedOrigins: ['https://app.example'] } }),
    contexts.strict,
  ];
  const LINES: Record<string, string[]> = {
    Host: ['app.example', 'other.example'],
    Origin: ['https://app.example', 'https://evil.example'],
    'X-Request-Id': ['abc-1', 'bad id'],
    'X-Forwarded-Method': ['GET', 'POST'],
    'X-Forwarded-Uri': ['/p?q', '/'],
    'X-Forwarded-For': ['203.0.113.9', '203.0.113.9, 10.0.0.3'],
    'X-Forwarded-Proto': ['https', 'http'],
    'X-Forwarded-Host': ['app.example', 'fwd.example'],
    'X-Auth-Request-Groups': ['admins', 'writers'],
    Accept: ['*/*'],
    Cookie: ['a=1'],
    Upgrade: ['websocket'],
    Connection: ['upgrade', 'x-forwarded-host'],
  };
  const line = fc.constantFrom(...Object.keys(LINES)).chain((name) => fc.constantFrom(...LINES[name]!).map((value) => [name, value]));
  const narrowRequest = fc.record({
    lines: fc.array(line, { maxLength: 12 }),
    users: fc.constantFrom(0, 1, 1, 1, 2),
    mode: fc.constantFrom('inline', 'forward-auth'),
    ctx: fc.constantFrom(...narrowing),
  });
  const decideWith = (ctx: DecisionContext, reads: ReadonlySet<string>, f: ReturnType<typeof facts>): Decision => {
    let id = 0;
    const d = decide(f, { ...ctx, rules: { ...ctx.rules, headers: new HeaderNames(ctx.rules.headers.owned, reads) }, newId: () => `id-${id++}` });
    // What was read differs by construction; what was forwarded and stripped may not.
    return d.ok ? { ...d, inbound: { ...d.inbound, read: new Map() } } : d;
  };
  let allowedRuns = 0;
  fc.assert(
    fc.property(narrowRequest, ({ lines, users, mode, ctx }) => {
      const raw = [['Host', 'app.example'], ...Array.from({ length: users }, () => ['X-Auth-Request-Email', 'alice@example.com']), ...lines].flat();
      const f = facts(raw, { mode });
      const every = new Set(raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()));
      const narrowed = decideWith(ctx, ctx.rules.headers.reads!, f);
      expect(narrowed).toEqual(decideWith(ctx, every, f));
      if (narrowed.ok) allowedRuns++;
    }),
    { numRuns: RUNS },
  );
  expect(allowedRuns).toBeGreaterThan(RUNS / 10);
});
