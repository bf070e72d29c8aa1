import type { IdentityConfig } from '../../../src/config/schema.js';
import { readIdentity } from '../../../src/identity/identity.js';
import { config } from '../context.js';

const base: IdentityConfig = config({
  identity: { emailHeader: 'x-auth-request-user-email', groupsHeader: 'x-auth-request-groups', requiredHeaders: ['x-auth-request-access-token'] },
}).identity;

/** Header values as Node hands them over: one JS char per byte (latin1). */
const latin1 = (utf8: string) => Buffer.from(utf8, 'utf8').toString('latin1');
const read = (entries: Record<string, string | string[]>) => new Map(Object.entries(entries).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
const ok = { 'x-auth-request-access-token': 't' };

test('a well-formed identity with email and groups', () => {
  const r = readIdentity(
    read({
      ...ok,
      'x-auth-request-email': ' alice@example.com ',
      'x-auth-request-user-email': 'alice@example.com',
      'x-auth-request-groups': 'admins, ,readers,',
    }),
    base,
  );
  expect(r).toEqual({
    ok: true,
    identity: { user: 'alice@example.com', userRaw: 'alice@example.com', email: 'alice@example.com', groups: ['admins', 'readers'] },
  });
});

test('UTF-8 values are decoded for the assertion and kept as bytes for the plain header', () => {
  const r = readIdentity(read({ ...ok, 'x-auth-request-email': latin1('zoë@example.com'), 'x-auth-request-groups': latin1('équipe') }), base);
  expect(r).toMatchObject({ ok: true, identity: { user: 'zoë@example.com', userRaw: latin1('zoë@example.com'), groups: ['équipe'] } });
});

// 0xA0 ends many UTF-8 characters (à is C3 A0, Š is C5 A0, 张 is E5 BC A0); as latin1 it
// reads as a no-break space, which String.prototype.trim() would eat.
test.each(['équipe-à', 'ops-Š', '李张', 'à'])('a value ending in the byte 0xA0 (%s) is kept whole', (name) => {
  const r = readIdentity(read({ ...ok, 'x-auth-request-email': latin1(name), 'x-auth-request-groups': latin1(`${name},${name}x`) }), base);
  expect(r).toMatchObject({ ok: true, identity: { user: name, userRaw: latin1(name), groups: [name, `${name}x`] } });
});

test('only SP and HTAB are optional white space around a value', () => {
  const r = readIdentity(read({ ...ok, 'x-auth-request-email': ' \t alice@example.com\t ' }), base);
  expect(r).toMatchObject({ ok: true, identity: { user: 'alice@example.com', userRaw: 'alice@example.com' } });
  expect(readIdentity(read({ ...ok, 'x-auth-request-email': 'alice@example.com\u00a0' }), base)).toMatchObject({ ok: false, reason: 'identity_invalid' });
});

test('every printable ASCII character but the comma is kept as sent', () => {
  const printable = Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i))
    .filter((c) => c !== ',')
    .join('');
  const value = `a${printable}@b.c`;
  expect(readIdentity(read({ ...ok, 'x-auth-request-email': value }), base)).toMatchObject({ ok: true, identity: { user: value, userRaw: value } });
});

test.each([
  ['absent', {}, 'identity_missing'],
  ['present twice', { 'x-auth-request-email': ['a@b.c', 'a@b.c'] }, 'identity_duplicated'],
  ['a comma list', { 'x-auth-request-email': 'a@b.c, m@b.c' }, 'identity_duplicated'],
  ['blank', { 'x-auth-request-email': '   ' }, 'identity_blank'],
  ['empty', { 'x-auth-request-email': '' }, 'identity_blank'],
  ['over 256 bytes', { 'x-auth-request-email': 'a'.repeat(257) }, 'identity_too_long'],
  ['over 256 bytes as UTF-8 though under 256 chars', { 'x-auth-request-email': latin1('é'.repeat(129)) }, 'identity_too_long'],
  ['a tab inside', { 'x-auth-request-email': 'al\tice' }, 'identity_invalid'],
  ['a NUL', { 'x-auth-request-email': 'al\u0000ice' }, 'identity_invalid'],
  ['a CR LF', { 'x-auth-request-email': 'alice\r\nx-forwarded-user: root' }, 'identity_invalid'],
  ['DEL', { 'x-auth-request-email': 'al\u007fice' }, 'identity_invalid'],
  ['a unit separator (0x1f)', { 'x-auth-request-email': 'al\u001fice' }, 'identity_invalid'],
  ['a UTF-8 C1 control (NEL)', { 'x-auth-request-email': latin1('al\u0085ice') }, 'identity_invalid'],
  ['bytes that are not UTF-8', { 'x-auth-request-email': 'al\u00ffice' }, 'identity_invalid'],
  ['an overlong UTF-8 slash', { 'x-auth-request-email': 'a\u00c0\u00afb' }, 'identity_invalid'],
  ['a lone UTF-8 continuation byte', { 'x-auth-request-email': 'a\u0080b' }, 'identity_invalid'],
  [
    "Caddy's unexpanded placeholder (its auth service sent no such header)",
    { 'x-auth-request-email': '{http.reverse_proxy.header.X-Auth-Request-Email}' },
    'identity_invalid',
  ],
])('user header %s → %s', (_what, headers, reason) => {
  const r = readIdentity(read({ ...ok, ...headers }), base);
  expect(r).toMatchObject({ ok: false, stage: 'identity', reason, status: 401 });
});

test('exactly maxValueBytes is accepted; the limit is configurable', () => {
  expect(readIdentity(read({ ...ok, 'x-auth-request-email': 'a'.repeat(256) }), base).ok).toBe(true);
  const small = { ...base, maxValueBytes: 16 };
  expect(readIdentity(read({ ...ok, 'x-auth-request-email': 'a'.repeat(17) }), small)).toMatchObject({ reason: 'identity_too_long' });
});

test('required headers must be present and non-blank', () => {
  const user = { 'x-auth-request-email': 'a@b.c' };
  expect(readIdentity(read(user), base)).toMatchObject({ ok: false, reason: 'required_header_missing', status: 401 });
  expect(readIdentity(read({ ...user, 'x-auth-request-access-token': ' ' }), base)).toMatchObject({ reason: 'required_header_missing' });
  expect(readIdentity(read({ ...user, 'x-auth-request-access-token': 'x' }), base).ok).toBe(true);
});

test('email: optional, one address, checked like the user', () => {
  const user = { ...ok, 'x-auth-request-email': 'alice' };
  expect(readIdentity(read(user), base)).toMatchObject({ ok: true, identity: { email: undefined } });
  expect(readIdentity(read({ ...user, 'x-auth-request-user-email': ' ' }), base)).toMatchObject({ ok: true, identity: { email: undefined } });
  for (const [value, reason] of [
    ['not-an-email', 'identity_invalid'],
    ['a@b.c, m@b.c', 'identity_invalid'],
    ['a@b.c\u0001', 'identity_invalid'],
    ['a'.repeat(300) + '@b.c', 'identity_too_long'],
  ] as const) {
    expect(readIdentity(read({ ...user, 'x-auth-request-user-email': value }), base)).toMatchObject({ ok: false, reason });
  }
  expect(readIdentity(read({ ...user, 'x-auth-request-user-email': ['a@b.c', 'a@b.c'] }), base)).toMatchObject({ reason: 'identity_duplicated' });
});

test('groups: comma list, each checked, bounded in number, one line only', () => {
  const user = { ...ok, 'x-auth-request-email': 'alice' };
  expect(readIdentity(read(user), base)).toMatchObject({ ok: true, identity: { groups: [] } });
  expect(readIdentity(read({ ...user, 'x-auth-request-groups': 'a,b\u0007' }), base)).toMatchObject({ reason: 'identity_invalid' });
  expect(readIdentity(read({ ...user, 'x-auth-request-groups': ['a', 'b'] }), base)).toMatchObject({ reason: 'identity_duplicated' });
  const many = Array.from({ length: 101 }, (_, i) => `g${i}`).join(',');
  expect(readIdentity(read({ ...user, 'x-auth-request-groups': many }), base)).toMatchObject({ reason: 'identity_invalid' });
  expect(readIdentity(read({ ...user, 'x-auth-request-groups': many }), { ...base, maxGroups: 101 }).ok).toBe(true);
});

test('without email and groups headers configured, those values are ignored', () => {
  const plain = config().identity;
  const r = readIdentity(read({ 'x-auth-request-email': 'alice', 'x-auth-request-groups': 'admins', 'x-auth-request-user-email': 'x' }), plain);
  expect(r).toEqual({ ok: true, identity: { user: 'alice', userRaw: 'alice', email: undefined, groups: [] } });
});
