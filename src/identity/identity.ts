// The identity stage: who the trusted proxy says the user is. Values arrive as Node
// decodes header bytes (latin1); they are checked as bytes and decoded as UTF-8.
import type { IdentityConfig } from '../config/schema.js';
import { refuse, type Refusal } from '../decision/reasons.js';
import { DUPLICATED, singleValue, trimOws } from '../request/headers.js';

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

export function readIdentity(read: Map<string, string[]>, config: IdentityConfig): { ok: true; identity: Identity } | Refusal {
  const userRaw = singleValue(read, config.userHeader);
  if (userRaw === undefined) return refuse('identity_missing', config.userHeader);
  if (userRaw === DUPLICATED) return refuse('identity_duplicated', config.userHeader);
  // A comma is how proxies join duplicate lines; one user is never a list.
  if (userRaw.includes(',')) return refuse('identity_duplicated', `${config.userHeader} holds a list`);
  const user = checkValue(userRaw, config.maxValueBytes, config.userHeader);
  if (!user.ok) return user;

  for (const name of config.requiredHeaders) {
    const values = read.get(name);
    if (values === undefined || values.every((v) => trimOws(v) === '')) {
      return refuse('required_header_missing', name);
    }
  }

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
