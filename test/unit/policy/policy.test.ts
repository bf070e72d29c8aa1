import type { Identity } from '../../../src/identity/identity.js';
import { checkOrigin, compilePolicy, isAllowed, scopesFor } from '../../../src/policy/policy.js';
import { config } from '../context.js';

const who = (user: string, groups: string[] = [], email?: string): Identity => ({ user, userRaw: user, email, groups });

describe('allow lists', () => {
  test('no list set: every authenticated user passes', () => {
    expect(isAllowed(who('anyone'), compilePolicy(config()))).toBe(true);
  });

  test('emails compare case-insensitively, opaque user ids exactly', () => {
    const p = compilePolicy(config({ identity: { allowUsers: ['Alice@Example.com', 'User-42'] } }));
    expect(isAllowed(who('alice@example.COM'), p)).toBe(true);
    expect(isAllowed(who('ALICE@EXAMPLE.COM'), p)).toBe(true);
    expect(isAllowed(who('User-42'), p)).toBe(true);
    expect(isAllowed(who('user-42'), p)).toBe(false);
    expect(isAllowed(who('User-42 '), p)).toBe(false);
    expect(isAllowed(who('bob@example.com'), p)).toBe(false);
    // A user id that is not the email still passes by its email.
    expect(isAllowed(who('1234', [], 'ALICE@example.com'), p)).toBe(true);
  });

  test('domains match the part after the last @, case-insensitively, never a suffix', () => {
    const p = compilePolicy(config({ identity: { allowEmailDomains: ['Example.com'] } }));
    expect(isAllowed(who('bob@example.com'), p)).toBe(true);
    expect(isAllowed(who('bob@EXAMPLE.com'), p)).toBe(true);
    expect(isAllowed(who('id-1', [], 'bob@example.com'), p)).toBe(true);
    expect(isAllowed(who('bob@evil-example.com'), p)).toBe(false);
    expect(isAllowed(who('bob@sub.example.com'), p)).toBe(false);
    expect(isAllowed(who('bob@example.com@evil.com'), p)).toBe(false);
    expect(isAllowed(who('example.com'), p)).toBe(false);
  });

  test('groups match exactly; any one list admits', () => {
    const p = compilePolicy(config({ identity: { allowGroups: ['admins'], allowUsers: ['carol'] } }));
    expect(isAllowed(who('x', ['readers', 'admins']), p)).toBe(true);
    expect(isAllowed(who('x', ['Admins']), p)).toBe(false);
    expect(isAllowed(who('carol'), p)).toBe(true);
    expect(isAllowed(who('dave', ['readers']), p)).toBe(false);
  });
});

describe('scopes', () => {
  const p = compilePolicy(
    config({
      gateway: {
        scopesHeader: 'x-openclaw-scopes',
        scopes: { default: ['operator.read'], byGroup: { writers: ['operator.write', 'operator.read'], admins: ['operator.admin', 'operator.write'] } },
      },
    }),
  );
  test('the union of the mapped groups, without repeats', () => {
    expect([...scopesFor(who('a', ['writers', 'admins', 'other']), p)].sort()).toEqual(['operator.admin', 'operator.read', 'operator.write']);
  });
  test('a user in no mapped group gets the default', () => {
    expect(scopesFor(who('a', ['other']), p)).toEqual(['operator.read']);
    expect(scopesFor(who('a'), p)).toEqual(['operator.read']);
  });
  test('the default can be empty', () => {
    expect(scopesFor(who('a'), compilePolicy(config()))).toEqual([]);
  });
});

describe('Origin allow list', () => {
  const p = compilePolicy(config({ listen: { allowedOrigins: ['https://app.example', 'http://localhost:3000/'] } }));
  test('listed origins pass, compared as origins', () => {
    expect(checkOrigin('https://app.example', p)).toBeUndefined();
    expect(checkOrigin('https://APP.example:443', p)).toBeUndefined();
    expect(checkOrigin('http://localhost:3000', p)).toBeUndefined();
  });
  test.each(['https://evil.example', 'http://app.example', 'https://app.example:8443', 'https://app.example.evil.example', 'null', 'not a url'])(
    '%s is refused',
    (origin) => {
      expect(checkOrigin(origin, p)).toMatchObject({ ok: false, reason: 'origin_not_allowed', status: 403 });
    },
  );
  test('no Origin (not a browser page) passes; no list means no check', () => {
    expect(checkOrigin(undefined, p)).toBeUndefined();
    expect(checkOrigin('https://evil.example', compilePolicy(config()))).toBeUndefined();
  });
});
