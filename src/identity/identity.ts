// The identity stage: who the trusted proxy says the user is, and, with identity.token,
// what the identity provider's own signed token says (token.ts): `require` takes the
// identity from the verified token (identity headers, when sent, must agree), `match`
// keeps the headers as the identity and requires a verified token that agrees. Header
// values arrive as Node decodes header bytes (latin1); they are checked as bytes and
// decoded as UTF-8.
import type { IdentityConfig } from '../config/schema.js';
import { refuse, type Refusal } from '../vocabulary/refusals.js';
import { DUPLICATED, singleValue, trimOws } from '../request/headers.js';
import { verifyProviderToken, type ProviderKeys, type TokenRules } from './token.js';

/** What checking a provider token needs besides the request: the keys, the rules, the time. */
export interface TokenContext {
  readonly keys: ProviderKeys | undefined;
  readonly rules: TokenRules;
  readonly nowSeconds: number;
}

export interface Identity {
  readonly user: string;
  /** The user value exactly as received, for the plain header sent upstream. */
  readonly userRaw: string;
  readonly email: string | undefined;
  readonly groups: readonly string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
// C0 controls, DEL and C1 controls: never part of a user name, email or group.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// A front proxy's placeholder left unexpanded: Caddy before 2.10 copies a header its auth
// service did not send as the literal text `{http.reverse_proxy.header.X-…}`.
const PLACEHOLDER = /^\{[A-Za-z_][\w.-]*\}$/;

type Checked = { ok: true; value: string } | Refusal;

function checkValue(raw: string, maxBytes: number, what: string): Checked {
  const value = trimOws(raw);
  if (value === '') return refuse('identity_blank', `${what} is blank`);
  // Printable ASCII (nearly every value) is its own UTF-8 decoding, one byte a character.
  if (isPrintableAscii(value)) {
    return value.length > maxBytes ? refuse('identity_too_long', `${what} is over ${maxBytes} bytes`) : { ok: true, value };
  }
  const bytes = Buffer.from(value, 'latin1');
  if (bytes.length > maxBytes) return refuse('identity_too_long', `${what} is over ${maxBytes} bytes`);
  let decoded: string;
  try {
    decoded = utf8.decode(bytes);
  } catch {
    return refuse('identity_invalid', `${what} is not UTF-8`);
  }
  if (CONTROL.test(decoded)) return refuse('identity_invalid', `${what} has control characters`);
  return { ok: true, value: decoded };
}

function isPrintableAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

type IdentityResult = { ok: true; identity: Identity } | Refusal;

export function readIdentity(read: Map<string, string[]>, config: IdentityConfig, token?: TokenContext): IdentityResult {
  const { mode } = config.token;
  if (mode === 'off' || token === undefined) return fromHeaders(read, config);
  const verified = tokenIdentity(read, config, token);
  if (!verified.ok) return verified;
  // `require` needs no identity headers, but ones that are sent must agree; `match` needs them.
  if (mode === 'require' && singleValue(read, config.userHeader) === undefined) {
    const missing = requiredHeaderMissing(read, config);
    return missing ?? verified;
  }
  const headers = fromHeaders(read, config);
  if (!headers.ok) return headers;
  const disagreement = disagreementOf(headers.identity, verified.identity);
  if (disagreement) return refuse('identity_token_mismatch', disagreement);
  return mode === 'require' ? verified : headers;
}

/** The identity the provider's verified token names. */
function tokenIdentity(read: Map<string, string[]>, config: IdentityConfig, token: TokenContext): IdentityResult {
  const { header, userClaim, groupsClaim } = config.token;
  const raw = singleValue(read, header);
  if (raw === DUPLICATED) return refuse('identity_token_invalid', `${header} sent twice`);
  if (raw === undefined || trimOws(raw) === '') return refuse('identity_token_missing', header);
  let value = trimOws(raw);
  // oauth2-proxy passes the ID token as `Authorization: Bearer <token>`.
  if (/^bearer /i.test(value)) value = trimOws(value.slice(7));
  const checked = verifyProviderToken(value, token.keys, token.rules, token.nowSeconds);
  if (!checked.ok) return checked;
  const { claims } = checked;
  // An email is someone's only once the provider has checked that they receive its mail
  // (OpenID Connect Core, 5.1): until then anyone may have typed it at sign-up.
  const emailVerified = claims['email_verified'] === true;
  if (userClaim === 'email' && !emailVerified) return refuse('identity_token_rejected', 'email not verified (email_verified is not true)');
  const user = claimValue(claims[userClaim], config.maxValueBytes);
  if (user === undefined) return refuse('identity_token_rejected', `claim ${userClaim} is not a usable user`);
  const emailClaim = claims['email'];
  const email = emailVerified && typeof emailClaim === 'string' ? claimValue(emailClaim, config.maxValueBytes) : undefined;
  const groupsValue = groupsClaim ? claims[groupsClaim] : undefined;
  if (groupsValue !== undefined && !Array.isArray(groupsValue)) return refuse('identity_token_rejected', `claim ${groupsClaim} is not a list`);
  const groups: string[] = [];
  for (const g of groupsValue ?? []) {
    const group = claimValue(g, config.maxValueBytes);
    if (group === undefined || group.includes(',')) return refuse('identity_token_rejected', `claim ${groupsClaim} holds an unusable group`);
    groups.push(group);
  }
  if (groups.length > config.maxGroups) return refuse('identity_token_rejected', `over ${config.maxGroups} groups`);
  // Sent to the gateway as header bytes: UTF-8, one character a byte, as a received value is.
  return { ok: true, identity: { user, userRaw: Buffer.from(user, 'utf8').toString('latin1'), email, groups } };
}

/** A claim usable as a user, email or group: a non-blank string, no controls, within the byte bound. */
function claimValue(value: unknown, maxBytes: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.trim();
  if (trimmed === '' || CONTROL.test(trimmed) || Buffer.byteLength(trimmed) > maxBytes) return undefined;
  return trimmed;
}

/**
 * Why the headers' identity is not the token's, if it is not: another user, an email the
 * token does not hold verified, or a group the token lacks.
 */
function disagreementOf(headers: Identity, token: Identity): string | undefined {
  if (!sameName(headers.user, token.user)) return 'user';
  if (headers.email !== undefined && token.email === undefined) return 'email not verified by the token';
  if (headers.email !== undefined && token.email !== undefined && !sameName(headers.email, token.email)) return 'email';
  const held = new Set(token.groups);
  if (headers.groups.some((g) => !held.has(g))) return 'a group the token does not hold';
  return undefined;
}

/** Email addresses compare case-insensitively, opaque ids exactly (as the allow lists do). */
function sameName(a: string, b: string): boolean {
  return a.includes('@') ? a.toLowerCase() === b.toLowerCase() : a === b;
}

function requiredHeaderMissing(read: Map<string, string[]>, config: IdentityConfig): Refusal | undefined {
  for (const name of config.requiredHeaders) {
    const values = read.get(name);
    if (values === undefined || values.every((v) => trimOws(v) === '')) return refuse('required_header_missing', name);
  }
  return undefined;
}

function fromHeaders(read: Map<string, string[]>, config: IdentityConfig): IdentityResult {
  const userRaw = singleValue(read, config.userHeader);
  if (userRaw === undefined) return refuse('identity_missing', config.userHeader);
  if (userRaw === DUPLICATED) return refuse('identity_duplicated', config.userHeader);
  // A comma is how proxies join duplicate lines; one user is never a list.
  if (userRaw.includes(',')) return refuse('identity_duplicated', `${config.userHeader} holds a list`);
  const user = checkValue(userRaw, config.maxValueBytes, config.userHeader);
  if (!user.ok) return user;
  // No one's name: the proxy vouched for a user its session check never named.
  if (PLACEHOLDER.test(user.value)) return refuse('identity_invalid', `${config.userHeader} is a proxy's unexpanded placeholder`);

  const missing = requiredHeaderMissing(read, config);
  if (missing) return missing;

  let email: string | undefined;
  if (config.emailHeader) {
    const raw = singleValue(read, config.emailHeader);
    if (raw === DUPLICATED) return refuse('identity_duplicated', config.emailHeader);
    if (raw !== undefined && trimOws(raw) !== '') {
      const checked = checkValue(raw, config.maxValueBytes, config.emailHeader);
      if (!checked.ok) return checked;
      if (!checked.value.includes('@') || checked.value.includes(',')) {
        return refuse('identity_invalid', `${config.emailHeader} is not one email address`);
      }
      email = checked.value;
    }
  }

  const groups: string[] = [];
  if (config.groupsHeader) {
    const raw = singleValue(read, config.groupsHeader);
    if (raw === DUPLICATED) return refuse('identity_duplicated', config.groupsHeader);
    for (const part of raw?.split(',') ?? []) {
      if (trimOws(part) === '') continue;
      const checked = checkValue(part, config.maxValueBytes, config.groupsHeader);
      if (!checked.ok) return checked;
      groups.push(checked.value);
    }
    if (groups.length > config.maxGroups) return refuse('identity_invalid', `over ${config.maxGroups} groups`);
  }

  return { ok: true, identity: { user: user.value, userRaw: trimOws(userRaw), email, groups } };
}
