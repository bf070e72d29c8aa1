// The route stage of the decision: deny and method refusals, and machine routes, which pass
// without an SSO identity but strip every identity header, never name a user to the
// gateway, and sign an assertion that names the route.
import { decodeJwt } from 'jose';
import type { ConfigInput } from '../../../src/config/schema.js';
import { decide, type AllowedDecision, type Decision } from '../../../src/decision/decide.js';
import { upstreamHeaders } from '../../../src/decision/gateway-headers.js';
import { headerValues } from '../../support/header-lines.js';
import { context, facts } from '../context.js';

const ROUTES = {
  trust: { cidrs: ['10.0.0.0/8'] },
  gateway: { scopesHeader: 'x-openclaw-scopes' },
  routes: [
    { name: 'admin', path: '/admin', mode: 'deny' },
    { name: 'hooks', path: '/hooks', methods: ['POST'], mode: 'machine', scopes: ['hooks.write'] },
    { name: 'public-hook', path: '/public/callback', match: 'exact', methods: ['POST'], mode: 'machine', untrustedSources: true },
  ],
} satisfies ConfigInput;
const ctx = context(ROUTES);
const HOOK = ['Host', 'gw.example', 'Authorization', 'Bearer hook-token', 'x-openclaw-token', 'hook-token'];
const post = (target: string, headers = HOOK, over = {}) => decide(facts(headers, { method: 'POST', target, ...over }), ctx);

function allowed(d: Decision): AllowedDecision {
  if (!d.ok) throw new Error(`refused: ${d.reason} (${d.detail ?? ''})`);
  return d;
}

describe('a machine route', () => {
  test('passes without an SSO identity: the gateway gets its own credentials, no user, the route in the assertion', () => {
    const d = allowed(post('/hooks/wake'));
    expect(d.route).toBe('hooks');
    const out = upstreamHeaders(d, ctx.rules);
    expect(headerValues(out, 'x-forwarded-user')).toEqual([]);
    expect(headerValues(out, 'authorization')).toEqual(['Bearer hook-token']);
    expect(headerValues(out, 'x-openclaw-token')).toEqual(['hook-token']);
    expect(headerValues(out, 'x-openclaw-scopes')).toEqual(['hooks.write']);
    const claims = decodeJwt(headerValues(out, 'x-trusted-proxy-assertion')[0]!);
    expect(claims).toMatchObject({ sub: 'route:hooks', route: 'hooks', groups: [], scope: 'hooks.write', htm: 'POST', htu: 'http://gw.example/hooks/wake' });
  });

  test('identity headers a caller sends are stripped, never passed or read', () => {
    const d = allowed(post('/hooks/wake', [...HOOK, 'X-Auth-Request-Email', 'admin@example.com', 'X-Forwarded-User', 'admin@example.com']));
    const out = upstreamHeaders(d, ctx.rules);
    expect(headerValues(out, 'x-auth-request-email')).toEqual([]);
    expect(headerValues(out, 'x-forwarded-user')).toEqual([]);
    expect(d.stripped).toEqual(expect.arrayContaining(['x-auth-request-email', 'x-forwarded-user']));
  });

  test('another method on its path is refused 405, and an upgrade too', () => {
    expect(decide(facts(HOOK, { method: 'GET', target: '/hooks/wake' }), ctx)).toMatchObject({ ok: false, reason: 'route_method_not_allowed', status: 405 });
    const upgrade = [...HOOK, 'Connection', 'Upgrade', 'Upgrade', 'websocket'];
    expect(decide(facts(upgrade, { method: 'POST', target: '/hooks/wake', upgrade: true }), ctx)).toMatchObject({
      ok: false,
      reason: 'route_method_not_allowed',
    });
  });

  test.each(['/hooks/../admin', '/hooks/%2e%2e/x', '/hooks//wake', '/x/../hooks/wake', '/hooks;a/wake', '/HOOKS/wake'])(
    'a path that reads two ways, %s, is on no machine route: an SSO identity is needed',
    (target) => {
      const d = post(target);
      expect(d.ok).toBe(false);
      expect(['identity_missing', 'route_denied']).toContain(d.ok ? '' : d.reason);
    },
  );

  test('from outside the trusted set: refused, unless the route takes untrusted sources, and then only on that route', () => {
    const outside = { peer: '192.0.2.7' };
    expect(post('/hooks/wake', HOOK, outside)).toMatchObject({ ok: false, reason: 'untrusted_source' });
    expect(allowed(post('/public/callback', HOOK, outside)).route).toBe('public-hook');
    expect(post('/public/callback/x', HOOK, outside)).toMatchObject({ ok: false, reason: 'untrusted_source' });
    expect(decide(facts(HOOK, { method: 'GET', target: '/public/callback', ...outside }), ctx)).toMatchObject({ ok: false, reason: 'untrusted_source' });
  });
});

describe('a deny route', () => {
  test.each(['/admin', '/admin/users', '/ADMIN', '/x/../admin', '/%61dmin/x'])('%s is refused 403 whoever asks', (target) => {
    const d = decide(facts(['Host', 'gw.example', 'X-Auth-Request-Email', 'alice@example.com'], { target }), ctx);
    expect(d).toMatchObject({ ok: false, reason: 'route_denied', status: 403, stage: 'route' });
  });
});

test('a request on no route needs an SSO identity, as without routes', () => {
  expect(decide(facts(['Host', 'gw.example'], { target: '/chat' }), ctx)).toMatchObject({ ok: false, reason: 'identity_missing' });
  expect(allowed(decide(facts(['Host', 'gw.example', 'X-Auth-Request-Email', 'alice@example.com'], { target: '/chat' }), ctx)).route).toBeUndefined();
});

test('forward-auth: the route is read from the forwarded method and URI', () => {
  const fa = [
    'Host',
    'gw.example',
    'X-Forwarded-Method',
    'POST',
    'X-Forwarded-Uri',
    '/hooks/wake',
    'X-Forwarded-Host',
    'gw.example',
    'X-Forwarded-Proto',
    'https',
  ];
  const d = allowed(
    decide(facts(fa, { mode: 'forward-auth', method: 'GET', target: '/forward-auth' }), context({ ...ROUTES, forwardAuth: { enabled: true } })),
  );
  expect(d.route).toBe('hooks');
  expect(decodeJwt(d.assertion)).toMatchObject({ route: 'hooks', htm: 'POST', htu: 'https://gw.example/hooks/wake' });
});

test("with identity.token on, Authorization is the provider's token for users (stripped) and the gateway's own credential on a machine route (passed)", () => {
  const withToken = context({ ...ROUTES, identity: { token: { mode: 'match', issuer: 'https://idp.example', audiences: ['openclaw'] } } });
  expect(withToken.rules.machineAuthorization).toBe(true);
  const d = allowed(decide(facts(HOOK, { method: 'POST', target: '/hooks/wake' }), withToken));
  expect(headerValues(upstreamHeaders(d, withToken.rules), 'authorization')).toEqual(['Bearer hook-token']);
  // Stripped for its own sake too (sanitise), it stays stripped on a machine route.
  const stripped = context({
    ...ROUTES,
    identity: { token: { mode: 'match', issuer: 'https://idp.example', audiences: ['openclaw'] } },
    sanitise: { extraNames: ['authorization'] },
  });
  expect(stripped.rules.machineAuthorization).toBe(false);
  const s = allowed(decide(facts(HOOK, { method: 'POST', target: '/hooks/wake' }), stripped));
  expect(headerValues(upstreamHeaders(s, stripped.rules), 'authorization')).toEqual([]);
});
