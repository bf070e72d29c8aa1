// The XFCC parser against its grammar. The reference below is the ABNF of src/trust/xfcc.ts
// written as a regular expression (an independent reading: no hand-written scanner), with
// the grammar's two rules that are not syntax (keys that may not repeat, the bounds). For
// generated values, well-formed, mutated and random, both must agree on acceptance and on
// every element and pair. Then the property the parser exists for: whatever a client sends
// ahead of the element the mesh proxy appends, the last element read is the proxy's, or the
// header is refused.
import fc from 'fast-check';
import { MAX_XFCC_CHARS, MAX_XFCC_ELEMENTS, parseXfccHeader, type XfccElement } from '../../../src/trust/xfcc.js';

const BCHAR = '[\\x21\\x23-\\x2b\\x2d-\\x3a\\x3c-\\x5b\\x5d-\\x7e]';
const QUOTED = '"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\x20-\\x5b\\x5d-\\x7e])*"';
const KEY = '(?:by|hash|cert|chain|subject|uri|dns)';
const PAIR = `(${KEY})=(${QUOTED}|${BCHAR}*)`;
const ELEMENT = `${KEY}=(?:${QUOTED}|${BCHAR}*)(?:;${KEY}=(?:${QUOTED}|${BCHAR}*))*`;
const WHOLE = new RegExp(`^${ELEMENT}(?:,${ELEMENT})*$`, 'i');

/** The grammar's reading: elements, then pairs, by the expressions alone. */
function reference(value: string): { ok: true; elements: XfccElement[] } | { ok: false } {
  if (value.length === 0 || value.length > MAX_XFCC_CHARS || !WHOLE.test(value)) return { ok: false };
  const elements: XfccElement[] = [];
  for (const e of value.matchAll(new RegExp(`(?:^|,)(${ELEMENT})`, 'gi'))) {
    const pairs: [string, string][] = [];
    for (const p of e[1]!.matchAll(new RegExp(`(?:^|;)${PAIR}`, 'gi'))) {
      const raw = p[2]!;
      pairs.push([p[1]!.toLowerCase(), raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, (m, c: string) => (c === '"' ? '"' : m)) : raw]);
    }
    const once = pairs.map(([k]) => k).filter((k) => k !== 'uri' && k !== 'dns');
    if (new Set(once).size !== once.length) return { ok: false };
    elements.push(pairs as unknown as XfccElement);
  }
  return elements.length > MAX_XFCC_ELEMENTS ? { ok: false } : { ok: true, elements };
}

const agree = (value: string) => {
  const got = parseXfccHeader(value);
  const want = reference(value);
  expect({ value, ok: got.ok }).toEqual({ value, ok: want.ok });
  if (got.ok && want.ok) expect(got.elements).toEqual(want.elements);
};

// Envoy's element, as connection_manager_utility.cc writes it.
const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}$/);
const spiffe = fc.tuple(label, label).map(([ns, sa]) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`);
// RFC 2253 text as OpenSSL prints it (`\,` `\+` `\"` `\=`); a literal backslash would print
// as `\\`, which the grammar refuses on purpose, so no honest name here holds one.
const dnValue = fc.stringMatching(/^[A-Za-z0-9 .,+"=-]{1,12}$/).map((v) => v.replace(/[,+"=]/g, (c) => `\\${c}`).replace(/^ | $/g, 'x'));
const subject = fc.array(fc.tuple(fc.constantFrom('CN', 'O', 'OU', 'C'), dnValue), { maxLength: 3 }).map((rdns) => rdns.map(([k, v]) => `${k}=${v}`).join(','));
const envoyElement = fc
  .record({ by: spiffe, hash: hex, subject, uris: fc.array(spiffe, { maxLength: 2 }), dns: fc.array(label, { maxLength: 2 }) })
  .map(({ by, hash, subject: s, uris, dns }) =>
    [`By=${by}`, `Hash=${hash}`, `Subject="${s}"`, ...(uris.length ? uris.map((u) => `URI=${u}`) : ['URI=']), ...dns.map((d) => `DNS=${d}`)].join(';'),
  );

// Random text weighted to the characters the grammar turns on.
const special = fc.constantFrom('"', '\\', ',', ';', '=', ' ', '\t', 'URI=', 'By=', 'Subject="', 'DNS=', 'a', 'Z', '\u0080', '\\"', '\\\\');
const noise = fc.array(special, { maxLength: 24 }).map((parts) => parts.join(''));
const mutated = fc.tuple(fc.array(envoyElement, { minLength: 1, maxLength: 3 }), fc.nat(), special).map(([elements, at, insert]) => {
  const value = elements.join(',');
  const i = at % (value.length + 1);
  return value.slice(0, i) + insert + value.slice(i);
});

test('accepts exactly what the grammar accepts, and reads it as the grammar does', () => {
  fc.assert(
    fc.property(fc.array(envoyElement, { minLength: 1, maxLength: 4 }), (elements) => agree(elements.join(','))),
    { numRuns: 500 },
  );
  fc.assert(fc.property(mutated, agree), { numRuns: 3000 });
  fc.assert(fc.property(noise, agree), { numRuns: 3000 });
  fc.assert(fc.property(fc.string({ maxLength: 40 }), agree), { numRuns: 1000 });
});

test("whatever a client sends before it, the last element read is the mesh proxy's, or the header is refused", () => {
  const prefix = fc.oneof(
    noise,
    mutated,
    fc.array(envoyElement, { maxLength: 2 }).map((e) => e.join(',')),
    fc.string({ maxLength: 30 }),
  );
  fc.assert(
    fc.property(prefix, envoyElement, (client, proxy) => {
      const own = parseXfccHeader(proxy);
      if (!own.ok) throw new Error(`an honest element was refused: ${proxy}`);
      const got = parseXfccHeader(client === '' ? proxy : `${client},${proxy}`);
      if (got.ok) expect(got.elements.at(-1)).toEqual(own.elements[0]);
    }),
    { numRuns: 5000 },
  );
});

test('the case that merged elements: a backslash before the separator', () => {
  const proxy = 'By=spiffe://cluster.local/ns/claw/sa/claw;Hash=0f;Subject="";URI=spiffe://cluster.local/ns/default/sa/attacker';
  expect(parseXfccHeader(`URI=spiffe://cluster.local/ns/traefik/sa/traefik;By=\\,${proxy}`)).toEqual({
    ok: false,
    problem: expect.stringContaining('only ; or , may follow'),
  });
});
