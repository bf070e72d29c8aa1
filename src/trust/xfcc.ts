// Envoy's x-forwarded-client-cert, read by its grammar and nothing looser. The header is
// written by more than one hand: with APPEND_FORWARD the client's own value comes first and
// the mesh proxy appends its element after a comma, so whatever the client sent is a prefix
// the parser must not let reach into the proxy's element. Envoy writes (connection_manager_
// utility.cc): `By=<uri>;Hash=<hex>;Cert="<url-encoded pem>";Chain="…";Subject="<RFC 2253>";
// URI=<uri>;DNS=<name>`, keys as listed, URI and DNS once per SAN, only the quoted values
// quoted, nothing escaped outside quotes. The grammar accepted here (docs/configuration.md):
//
//   xfcc    = element *( "," element )
//   element = pair *( ";" pair )
//   pair    = key "=" value                 ; key: By Hash Cert Chain Subject URI DNS, any case
//   value   = quoted / *bchar               ; By, Hash, Cert, Chain, Subject at most once each
//   bchar   = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E   ; VCHAR but DQUOTE , ; \
//   quoted  = DQUOTE *( qchar / "\" qesc ) DQUOTE
//   qchar   = %x20-21 / %x23-5B / %x5D-7E    ; VCHAR and SP but DQUOTE \
//   qesc    = %x20-5B / %x5D-7E              ; anything printable but \
//
// Refused, because two readers could split them differently: a backslash outside quotes
// (the old reading took `\,` as an escaped comma and merged the client's element with the
// proxy's), `\\` inside quotes (read as one escaped backslash, or as a backslash before an
// escaped quote), blanks or controls outside quotes, a quote that does not close just before
// a separator or the end, an empty element, and anything past the bounds below.

/** More than any honest chain of proxies appends; the header is read on every request. */
export const MAX_XFCC_CHARS = 16_384;
export const MAX_XFCC_ELEMENTS = 16;

export const XFCC_KEYS = ['by', 'hash', 'cert', 'chain', 'subject', 'uri', 'dns'] as const;
export type XfccKey = (typeof XFCC_KEYS)[number];
const KEYS: ReadonlySet<string> = new Set(XFCC_KEYS);
/** Keys that may repeat in one element: one per SAN of the certificate. */
const REPEATABLE: ReadonlySet<string> = new Set(['uri', 'dns']);

/** One element's pairs in order, keys lower-cased, quoted values unquoted (`\"` → `"`, other escapes kept). */
export type XfccElement = readonly (readonly [XfccKey, string])[];

export type XfccResult = { ok: true; elements: readonly XfccElement[] } | { ok: false; problem: string };

const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A bare value's character: printable ASCII but `"` `,` `;` `\`. */
function isBareChar(c: number): boolean {
  return c >= 0x21 && c <= 0x7e && c !== DQUOTE && c !== 0x2c && c !== 0x3b && c !== BACKSLASH;
}

/** A character inside quotes: printable ASCII or space, but `"` and `\` (which are read apart). */
function isQuotedChar(c: number): boolean {
  return c >= 0x20 && c <= 0x7e && c !== DQUOTE && c !== BACKSLASH;
}

/** Parses a whole header value; the problem says where the grammar was left. */
export function parseXfccHeader(value: string): XfccResult {
  if (value.length === 0) return { ok: false, problem: 'empty' };
  if (value.length > MAX_XFCC_CHARS) return { ok: false, problem: `over ${MAX_XFCC_CHARS} characters` };
  const elements: XfccElement[] = [];
  let pairs: [XfccKey, string][] = [];
  const seen = new Set<string>();
  let i = 0;
  for (;;) {
    // key
    const eq = value.indexOf('=', i);
    const key = eq < 0 ? '' : value.slice(i, eq).toLowerCase();
    if (!KEYS.has(key)) return { ok: false, problem: `at ${i}: a pair must start with one of By, Hash, Cert, Chain, Subject, URI, DNS and =` };
    if (seen.has(key) && !REPEATABLE.has(key)) return { ok: false, problem: `at ${i}: ${key} twice in one element` };
    seen.add(key);
    i = eq + 1;
    // value
    let text: string;
    if (value.charCodeAt(i) === DQUOTE) {
      let out = '';
      let j = i + 1;
      for (;;) {
        if (j >= value.length) return { ok: false, problem: `at ${i}: a quoted value is not closed` };
        const c = value.charCodeAt(j);
        if (c === DQUOTE) break;
        if (c === BACKSLASH) {
          const next = value.charCodeAt(j + 1);
          if (j + 1 >= value.length || next === BACKSLASH || next < 0x20 || next > 0x7e)
            return { ok: false, problem: `at ${j}: a backslash in quotes must escape one printable character other than a backslash` };
          // `\"` is Envoy's quote; any other escape belongs to the value (an RFC 4514 name's `\,`).
          out += next === DQUOTE ? '"' : value.slice(j, j + 2);
          j += 2;
          continue;
        }
        if (!isQuotedChar(c)) return { ok: false, problem: `at ${j}: a character not allowed in quotes` };
        out += value[j];
        j++;
      }
      text = out;
      i = j + 1;
    } else {
      const start = i;
      while (i < value.length && isBareChar(value.charCodeAt(i))) i++;
      text = value.slice(start, i);
    }
    pairs.push([key as XfccKey, text]);
    // separator or end
    if (i === value.length) break;
    const sep = value[i];
    if (sep === ';') {
      i++;
      continue;
    }
    if (sep !== ',') return { ok: false, problem: `at ${i}: only ; or , may follow a value` };
    elements.push(pairs);
    if (elements.length >= MAX_XFCC_ELEMENTS) return { ok: false, problem: `over ${MAX_XFCC_ELEMENTS} elements` };
    pairs = [];
    seen.clear();
    i++;
  }
  elements.push(pairs);
  return { ok: true, elements };
}
