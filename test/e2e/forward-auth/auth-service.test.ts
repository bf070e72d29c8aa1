// The oauth2-proxy stand-in the end-to-end suites sign in with: its session check and its
// login form behave like the real one's in the ways the suites rely on.
import { startAuthService, type AuthService } from '../../support/auth-service.js';

let auth: AuthService;

beforeAll(async () => {
  auth = await startAuthService({
    alice: { password: 'alice-pw', email: 'alice@example.com', groups: ['operators', 'readers'] },
    bob: { password: 'bob-pw', email: 'bob@example.com', groups: [] },
  });
});
afterAll(() => auth.close());

const check = (cookie?: string) => fetch(`${auth.url}/oauth2/auth`, { headers: cookie ? { cookie: `_oauth2_proxy=${cookie}` } : {} });

test('a valid session gets 202 with user, email and groups; no or a tampered session gets 401', async () => {
  const ok = await check(auth.cookieFor('alice'));
  expect(ok.status).toBe(202);
  expect(ok.headers.get('x-auth-request-user')).toBe('alice');
  expect(ok.headers.get('x-auth-request-email')).toBe('alice@example.com');
  expect(ok.headers.get('x-auth-request-groups')).toBe('operators,readers');
  const bob = await check(auth.cookieFor('bob'));
  expect(bob.headers.get('x-auth-request-groups')).toBe('');
  expect((await check()).status).toBe(401);
  const [data, sig] = auth.cookieFor('alice').split('.');
  const forged = Buffer.from(JSON.stringify({ u: 'bob', exp: 9999999999 })).toString('base64url');
  expect((await check(`${forged}.${sig}`)).status).toBe(401);
  expect((await check(`${data}.${sig!.slice(0, -2)}xx`)).status).toBe(401);
});

test('the login form signs in with the right password, sets an HttpOnly cookie and redirects to rd', async () => {
  const form = await fetch(`${auth.url}/login?rd=/chat?x=1`);
  expect(form.status).toBe(200);
  const html = await form.text();
  expect(html).toContain('name="username"');
  expect(html).toContain('name="password"');
  const post = (body: string) =>
    fetch(`${auth.url}/login`, { method: 'POST', body, redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const ok = await post('username=alice&password=alice-pw&rd=%2Fchat%3Fx%3D1');
  expect(ok.status).toBe(302);
  expect(ok.headers.get('location')).toBe('/chat?x=1');
  const setCookie = ok.headers.get('set-cookie')!;
  expect(setCookie).toMatch(/^_oauth2_proxy=[^;]+; .*HttpOnly/);
  expect((await check(setCookie.split(';')[0]!.split('=')[1])).status).toBe(202);
  const wrong = await post('username=alice&password=nope&rd=%2F');
  expect(wrong.status).toBe(401);
  expect(wrong.headers.get('set-cookie')).toBeNull();
  expect(await wrong.text()).toContain('name="password"');
  // Only same-site paths: an open redirect would turn the form into a phishing aid.
  const offsite = await post('username=alice&password=alice-pw&rd=%2F%2Fevil.example%2F');
  expect(offsite.headers.get('location')).toBe('/');
});
