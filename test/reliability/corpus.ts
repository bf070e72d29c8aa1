// The attack corpus: one case per entry in test/reliability/corpus/*.json, each with its class
// from the header-attack list and the exact bytes to send. Bytes are written as JSON
// strings (\r, \n, \u0000 and \u0080-\u00ff stand for single bytes: they are encoded as
// latin1) with placeholders for what only the run knows:
//   {T} target path of this send, {HOST} Host value, {COOKIE} a valid session cookie,
//   {USER} the signed-in user, {EVIL} the attacker's identity, {ING}/{POD}/{ROGUE} host
//   addresses, {A_NONE} {A_HS512} {A_WRONG_KEY} {A_EXPIRED} {A_REPLAY} forged assertions,
//   {SMUGGLE} a second request with forged headers and no identity line (refused wherever
//   it is parsed as a request; it must never reach a gateway), {SMUGGLE_LEN} and
//   {SMUGGLE_HEX} its length, {FILL:n} n filler bytes, {LINES:n} n
//   filler header lines.
// A case gives either `bytes` (the whole request, byte-exact) or `lines` (extra header
// lines of a standard request: request line, Host, the session cookie and the user's
// identity line, then the lines, then `Connection: close`).
import { createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CorpusCase {
  readonly id: string;
  /** Class number in the header-attack list (0: a legitimate control request). */
  readonly class: number;
  readonly title: string;
  readonly method?: string;
  readonly lines?: readonly string[];
  readonly bytes?: string;
  /** The identity line of a standard request ({USER} when absent, null for none). */
  readonly identity?: string | null;
  readonly body?: string;
}

export const CLASSES: Record<number, string> = {
  0: 'Control: legitimate requests',
  1: 'Spoofed identity from an untrusted source',
  2: 'Spoofed identity or assertion from a trusted source',
  3: 'Name aliases',
  4: 'Duplicates',
  5: 'Hop-by-hop abuse',
  6: 'X-Forwarded-For trust',
  7: 'Other forwarded headers',
  8: 'Loopback and mapped addresses',
  9: 'Request smuggling and parser differentials',
  10: 'Header value injection',
  11: 'Replay',
  12: 'Algorithm confusion',
  13: 'WebSocket specifics',
  14: 'Slow and large clients',
  15: 'Crash attempts',
  16: 'Exhaustion by an allowed user',
  17: 'Exhaustion by an unauthenticated client',
};

/**
 * Classes of what a client does with the connection rather than the bytes of a request:
 * their cases are paths × stages × acts in reliability/chaos.ts, not files here.
 */
export const CONNECTION_CLASSES: ReadonlySet<number> = new Set([15, 16, 17]);

export const CORPUS_DIR = join(process.cwd(), 'test', 'reliability', 'corpus');

export function loadCorpus(dir = CORPUS_DIR): CorpusCase[] {
  const cases: CorpusCase[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    for (const c of JSON.parse(readFileSync(join(dir, file), 'utf8')) as CorpusCase[]) {
      if (!/^[a-z0-9-]+$/.test(c.id)) throw new Error(`${file}: bad case id ${c.id}`);
      if (!(c.class in CLASSES) || CONNECTION_CLASSES.has(c.class)) throw new Error(`${file}: ${c.id} has unknown class ${c.class}`);
      if ((c.bytes === undefined) === (c.lines === undefined)) throw new Error(`${file}: ${c.id} needs exactly one of bytes, lines`);
      if (cases.some((o) => o.id === c.id)) throw new Error(`${file}: duplicate case id ${c.id}`);
      cases.push(c);
    }
  }
  return cases;
}

export interface Materials {
  target: string;
  host: string;
  cookie: string;
  user: string;
  evil: string;
  addresses: { ING: string; POD: string; ROGUE: string };
  assertions: Record<'A_NONE' | 'A_HS512' | 'A_WRONG_KEY' | 'A_EXPIRED' | 'A_REPLAY', string>;
}

const SMUGGLE =
  'GET {T}/smuggled HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-User: {EVIL}\r\nX_Auth_Request_Email: {EVIL}\r\n' +
  'X-Trusted-Proxy-Assertion: {A_NONE}\r\nConnection: close\r\n\r\n';

/** The exact bytes of a case for one send. */
export function render(c: CorpusCase, m: Materials): Buffer {
  let text = c.bytes ?? standard(c);
  const smuggle = fill(SMUGGLE, m);
  text = text.replaceAll('{SMUGGLE_LEN}', String(Buffer.byteLength(smuggle, 'latin1')));
  text = text.replaceAll('{SMUGGLE_HEX}', Buffer.byteLength(smuggle, 'latin1').toString(16));
  text = text.replaceAll('{SMUGGLE}', smuggle);
  return Buffer.from(fill(text, m), 'latin1');
}

function standard(c: CorpusCase): string {
  const identity = c.identity === undefined ? 'X-Auth-Request-Email: {USER}' : c.identity;
  const body = c.body ?? '';
  const lines = [
    `${c.method ?? 'GET'} {T} HTTP/1.1`,
    'Host: {HOST}',
    'Cookie: _oauth2_proxy={COOKIE}',
    ...(identity === null ? [] : [identity]),
    ...(c.lines ?? []),
    ...(body ? [`Content-Length: ${Buffer.byteLength(body, 'latin1')}`] : []),
    'Connection: close',
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

function fill(text: string, m: Materials): string {
  return text
    .replace(/\{FILL:(\d+)\}/g, (_, n: string) => 'a'.repeat(Number(n)))
    .replace(/\{LINES:(\d+)\}/g, (_, n: string) => Array.from({ length: Number(n) }, (_v, i) => `X-Filler-${i}: ${i}\r\n`).join(''))
    .replace(/\{(T|HOST|COOKIE|USER|EVIL|ING|POD|ROGUE|A_[A-Z0-9_]+)\}/g, (whole, key: string) => {
      if (key === 'T') return m.target;
      if (key === 'HOST') return m.host;
      if (key === 'COOKIE') return m.cookie;
      if (key === 'USER') return m.user;
      if (key === 'EVIL') return m.evil;
      if (key === 'ING' || key === 'POD' || key === 'ROGUE') return m.addresses[key];
      return (m.assertions as Record<string, string>)[key] ?? whole;
    });
}

/**
 * What an attacker can make of an assertion without the key (or with a stolen, expired
 * one): alg none, another algorithm, a key of their own, a past expiry. Each names the
 * attacker, so one reaching the gateway as identity would show.
 */
export function forgedAssertions(realKey: Buffer, evil: string, replay: string, nowSeconds = Math.floor(Date.now() / 1000)) {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const claims = (exp: number) => ({
    iss: 'trusted-proxy-sidecar',
    aud: 'gateway',
    sub: evil,
    groups: ['admins'],
    iat: exp - 30,
    nbf: exp - 30,
    exp,
    jti: randomBytes(16).toString('base64url'),
    cip: '203.0.113.66',
    htm: 'GET',
    htu: 'http://gw.example/admin',
  });
  const signed = (alg: 'HS256' | 'HS512', key: Buffer, exp: number) => {
    const input = `${b64({ alg, typ: 'JWT', kid: 'k1' })}.${b64(claims(exp))}`;
    return `${input}.${createHmac(alg === 'HS256' ? 'sha256' : 'sha512', key)
      .update(input)
      .digest('base64url')}`;
  };
  return {
    A_NONE: `${b64({ alg: 'none', typ: 'JWT', kid: 'k1' })}.${b64(claims(nowSeconds + 3600))}.`,
    A_HS512: signed('HS512', realKey, nowSeconds + 3600),
    A_WRONG_KEY: signed('HS256', randomBytes(32), nowSeconds + 3600),
    A_EXPIRED: signed('HS256', realKey, nowSeconds - 3600),
    A_REPLAY: replay,
  };
}

/** Status codes of every response in a raw reply, in order. */
export function statuses(reply: string): number[] {
  return [...reply.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}
