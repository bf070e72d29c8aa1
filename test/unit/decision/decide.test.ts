import { decodeJwt } from 'jose';
import { verifyAssertion } from '../../../src/assertion/verify.js';
import type { ConfigInput } from '../../../src/config/schema.js';
import { decide, type AllowedDecision, type Decision } from '../../../src/decision/decide.js';
import { gatewayHeaders, upstreamHeaders } from '../../../src/decision/gateway-headers.js';
import { headerPairs, headerValues } from '../../support/header-lines.js';
import { REFUSALS } from '../../../src/vocabulary/refusals.js';
import { context, facts, KEYS, NOW_MS } from '../context.js';

const TRUSTED = { trust: { cidrs: ['10.0.0.0/8'] } } satisfies ConfigInput;
const user = ['Host', 'app.example', 'X-Auth-Request-Email', 'alice@example.com'];

function allowed(d: Decision): AllowedDecision {
  if (!d.ok) throw new Error(`refused: ${d.reason} (${d.detail ?? ''})`);
  return d;
}

describe('refusals: each reason with its status', () => {
  const cases: [string, ConfigInput, Parameters<typeof facts>, keyof typeof REFUSALS][] = [
    ['untrusted peer', TRUSTED, [user, { peer: '192.0.2.1' }], 'untrusted_source'],
    ['loopback peer', TRUSTED, [user, { peer: '127.0.0.1' }], 'untrusted_source'],
    ['mapped loopback peer', TRUSTED, [user, { peer: '::ffff:127.0.0.1' }], 'untrusted_source'],
    ['unspecified peer', { trust: { cidrs: ['0.0.0.0/0'] } }, [user, { peer: '0.0.0.0' }], 'untrusted_source'],
    ['no peer', TRUSTED, [user, { peer: '' }], 'untrusted_source'],
    [
      'too many headers',
      { ...TRUSTED, listen: { maxHeaderCount: 16 } },
      [[...user, ...Array.from({ length: 15 }, (_, i) => [`x-h${i}`, 'v']).flat()]],
      'too_many_headers',
    ],
    ['two Host lines', TRUSTED, [[...user, 'Host', 'evil.example']], 'bad_request'],
    // The gateway's verifier rebuilds htu from the forwarded host: without one it could not.
    ['no Host (HTTP/1.0)', TRUSTED, [['X-Auth-Request-Email', 'alice@example.com']], 'bad_request'],
    ['a Host with a trailing dot', TRUSTED, [['Host', 'app.example.', 'X-Auth-Request-Email', 'alice@example.com']], 'bad_request'],
    ['no identity', TRUSTED, [['Host', 'a']], 'identity_missing'],
    ['identity twice', TRUSTED, [[...user, 'x-auth-request-email', 'alice@example.com']], 'identity_duplicated'],
    ['identity only as an alias', TRUSTED, [['Host', 'a', 'X_Auth_Request_Email', 'alice@example.com']], 'identity_missing'],
    ['identity nominated by Connection', TRUSTED, [[...user, 'Connection', 'x-auth-request-email']], 'identity_missing'],
    ['blank identity', TRUSTED, [['Host', 'a', 'X-Auth-Request-Email', ' ']], 'identity_blank'],
    ['long identity', TRUSTED, [['Host', 'a', 'X-Auth-Request-Email', 'a'.repeat(300)]], 'identity_too_long'],
    ['control char', TRUSTED, [['Host', 'a', 'X-Auth-Request-Email', 'a\u0001']], 'identity_invalid'],
    ['required header missing', { ...TRUSTED, identity: { requiredHeaders: ['x-auth-request-access-token'] } }, [user], 'required_header_missing'],
    ['user not allowed', { ...TRUSTED, identity: { allowUsers: ['bob@example.com'] } }, [user], 'user_not_allowed'],
    [
      'cross-site Origin on upgrade',
      { ...TRUSTED, listen: { allowedOrigins: ['https://app.example'] } },
      [[...user, 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Origin', 'https://evil.example'], { upgrade: true }],
      'origin_not_allowed',
    ],
    [
      'two Origin lines on upgrade',
      { ...TRUSTED, listen: { allowedOrigins: ['https://app.example'] } },
      [[...user, 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Origin', 'https://app.example', 'Origin', 'https://evil.example'], { upgrade: true }],
      'origin_not_allowed',
    ],
    ['upgrade to anything but WebSocket', TRUSTED, [[...user, 'Connection', 'Upgrade', 'Upgrade', 'h2c'], { upgrade: true }], 'bad_request'],
    ['upgrade without an Upgrade header', TRUSTED, [[...user, 'Connection', 'Upgrade'], { upgrade: true }], 'bad_request'],
    ['forward-auth without method', TRUSTED, [[...user, 'X-Forwarded-Uri', '/x'], { mode: 'forward-auth' }], 'forwarded_method_invalid'],
    [
      'forward-auth bad method',
      TRUSTED,
      [[...user, 'X-Forwarded-Method', 'GET /', 'X-Forwarded-Uri', '/x'], { mode: 'forward-auth' }],
      'forwarded_method_invalid',
    ],
    ['forward-auth without uri', TRUSTED, [[...user, 'X-Forwarded-Method', 'GET'], { mode: 'forward-auth' }], 'forwarded_uri_invalid'],
    [
      'forward-auth absolute uri',
      TRUSTED,
      [[...user, 'X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', 'https://evil.example/x'], { mode: 'forward-auth' }],
      'forwarded_uri_invalid',
    ],
    [
      'forward-auth uri with fragment',
      TRUSTED,
      [[...user, 'X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/x#y'], { mode: 'forward-auth' }],
      'forwarded_uri_invalid',
    ],
    [
      'forward-auth two uris',
      TRUSTED,
      [[...user, 'X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/x', 'X-Forwarded-Uri', '/y'], { mode: 'forward-auth' }],
      'forwarded_uri_invalid',
    ],
  ];
  test.each(cases)('%s', (_what, input, args, reason) => {
    const d = decide(facts(...args), context(input));
    expect(d).toMatchObject({ ok: false, reason, status: REFUSALS[reason] });
  });

  test('status codes: 403 source, 401 identity, 403 policy, 503 without a key', () => {
    expect(decide(facts(user, { peer: '192.0.2.1' }), context(TRUSTED))).toMatchObject({ status: 403, stage: 'source' });
    expect(decide(facts(['Host', 'a']), context(TRUSTED))).toMatchObject({ status: 401, stage: 'identity' });
    expect(decide(facts(user), context({ ...TRUSTED, identity: { allowGroups: ['x'] } }))).toMatchObject({ status: 403, stage: 'policy' });
    expect(decide(facts(user), context(TRUSTED, { signer: null }))).toMatchObject({ status: 503, reason: 'assertion_key_unavailable' });
  });

  test('an untrusted source is refused before any header is read', () => {
    const d = decide(facts([...user, 'X-Request-Id', 'mine'], { peer: '192.0.2.1' }), context(TRUSTED));
    expect(d).toMatchObject({ ok: false, peer: '192.0.2.1', stripped: [] });
    expect(d.requestId).not.toBe('mine');
  });
});

describe('allowed', () => {
  test('the assertion binds user, client, method and target, and verifies', async () => {
    const d = allowed(
      decide(
        facts(['Host', 'App.Example:8443', 'X-Auth-Request-Email', 'alice@example.com', 'X-Forwarded-For', '203.0.113.7', 'X-Forwarded-Proto', 'https'], {
          method: 'POST',
          target: '/api/x?token=secret',
        }),
        context(TRUSTED),
      ),
    );
    expect(d).toMatchObject({
      client: '203.0.113.7',
      proto: 'https',
      host: 'App.Example:8443',
      method: 'POST',
      target: '/api/x?token=secret',
      trustedBy: ['static'],
    });
    const claims = await verifyAssertion(d.assertion, {
      keys: KEYS,
      now: () => NOW_MS,
      request: { method: 'POST', uri: 'https://app.example:8443/api/x?token=secret' },
    });
    expect(claims).toMatchObject({
      sub: 'alice@example.com',
      cip: '203.0.113.7',
      htm: 'POST',
      iat: NOW_MS / 1000,
      nbf: NOW_MS / 1000,
      exp: NOW_MS / 1000 + 30,
      kid: 'k1',
    });
  });

  test('forward-auth binds the original method and target from X-Forwarded-Method/Uri', () => {
    const d = allowed(
      decide(
        facts(
          [
            ...user,
            'X-Forwarded-Method',
            'delete',
            'X-Forwarded-Uri',
            ' /items/7?x=1 ',
            'X-Forwarded-Host',
            'app.example',
            'X-Forwarded-Proto',
            'https',
            // Prefix and port are not part of the bound target.
            'X-Forwarded-Prefix',
            '/admin',
            'X-Forwarded-Port',
            '9999',
          ],
          { mode: 'forward-auth', method: 'GET', target: '/forward-auth' },
        ),
        context(TRUSTED),
      ),
    );
    expect(d).toMatchObject({ method: 'DELETE', target: '/items/7?x=1', host: 'app.example' });
    expect(decodeJwt(d.assertion)).toMatchObject({ htm: 'DELETE', htu: 'https://app.example/items/7?x=1' });
  });

  test('a client X-Request-Id is kept only when well-formed', () => {
    const keep = allowed(decide(facts([...user, 'X-Request-Id', 'abc-123']), context(TRUSTED)));
    expect(keep.requestId).toBe('abc-123');
    for (const good of ['AZaz09._:-', 'a'.repeat(128)]) expect(allowed(decide(facts([...user, 'X-Request-Id', good]), context(TRUSTED))).requestId).toBe(good);
    // Each neighbour of an allowed character range.
    for (const bad of ['has space', 'a'.repeat(129), 'x\u0080', 'a/b', 'a;b', 'a@b', 'a[b', 'a`b', 'a{b', 'a,b']) {
      expect(allowed(decide(facts([...user, 'X-Request-Id', bad]), context(TRUSTED))).requestId).not.toBe(bad);
    }
  });

  test('Origin is checked only on upgrades inline, always in forward-auth', () => {
    const ctx = context({ ...TRUSTED, listen: { allowedOrigins: ['https://app.example'] } });
    expect(decide(facts([...user, 'Origin', 'https://evil.example']), ctx).ok).toBe(true);
    expect(
      decide(facts([...user, 'Origin', 'https://evil.example', 'X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/'], { mode: 'forward-auth' }), ctx),
    ).toMatchObject({ reason: 'origin_not_allowed' });
    expect(decide(facts([...user, 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Origin', 'https://app.example'], { upgrade: true }), ctx).ok).toBe(true);
  });

  // Node emits 'upgrade' only with Connection: upgrade; without it the request is a plain
  // one whose Upgrade line is just another hop-by-hop header.
  test('Upgrade without Connection: upgrade is a plain request: no Origin check, no Upgrade upstream', () => {
    const ctx = context({ ...TRUSTED, listen: { allowedOrigins: ['https://app.example'] } });
    const d = allowed(decide(facts([...user, 'Upgrade', 'websocket', 'Origin', 'https://evil.example']), ctx));
    expect(d.upgrade).toBeUndefined();
    const out = upstreamHeaders(d, ctx.rules);
    expect(headerValues(out, 'upgrade')).toEqual([]);
    expect(headerValues(out, 'connection')).toEqual([]);
  });
});

describe('upstreamHeaders', () => {
  const input = {
    ...TRUSTED,
    identity: { groupsHeader: 'x-auth-request-groups' },
    gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: [], byGroup: { admins: ['operator.admin'] } } },
  } satisfies ConfigInput;

  test('client copies of owned headers are replaced by the sidecar values only', () => {
    const ctx = context(input);
    const d = allowed(
      decide(
        facts([
          'Host',
          'app.example',
          'X-Auth-Request-Email',
          'alice@example.com',
          'X-Auth-Request-Groups',
          'admins',
          'X-Forwarded-User',
          'root',
          'x_forwarded_user',
          'root',
          'X-OpenClaw-Scopes',
          'operator.admin,operator.write',
          'X-Trusted-Proxy-Assertion',
          'forged.token.here',
          'X-Forwarded-Host',
          'app.example',
          'X-Forwarded-Port',
          '1',
          'Forwarded',
          'for=1.2.3.4',
          'X-Real-IP',
          '1.2.3.4',
          'X-Request-Id',
          'client-id',
          'Cookie',
          'a=1',
          'Cookie',
          'b=2',
          'Connection',
          'keep-alive, X-Forwarded-User, x-trusted-proxy-assertion',
        ]),
        ctx,
      ),
    );
    const out = upstreamHeaders(d, ctx.rules);
    expect(headerPairs(out)).toEqual([
      ['host', 'app.example'],
      ['cookie', 'a=1'],
      ['cookie', 'b=2'],
      ['x-forwarded-for', '10.0.0.5'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'app.example'],
      ['x-request-id', 'client-id'],
      ['x-forwarded-user', 'alice@example.com'],
      ['x-openclaw-scopes', 'operator.admin'],
      ['x-trusted-proxy-assertion', d.assertion],
    ]);
  });

  test('one contract for both modes: inline ends with exactly the identity lines a forward-auth answer carries', () => {
    const ctx = context(input);
    const d = allowed(decide(facts([...user, 'X-Auth-Request-Groups', 'admins']), ctx));
    const grant = gatewayHeaders(ctx.rules.config, d);
    expect(headerPairs(grant)).toEqual([
      ['x-request-id', d.requestId],
      ['x-forwarded-user', 'alice@example.com'],
      ['x-openclaw-scopes', 'operator.admin'],
      ['x-trusted-proxy-assertion', d.assertion],
    ]);
    expect(upstreamHeaders(d, ctx.rules).slice(-grant.length)).toEqual(grant);
  });

  test('the scopes header is sent even when empty; loopback is never sent as the client', () => {
    const ctx = context(input, { allowLoopback: true });
    const out = upstreamHeaders(allowed(decide(facts(user, { peer: '::ffff:127.0.0.1' }), ctx)), ctx.rules);
    expect(headerValues(out, 'x-openclaw-scopes')).toEqual(['']);
    expect(headerValues(out, 'x-forwarded-for')).toEqual([]);
  });

  test('the assertion carries the scopes the header sends, and none without the header', () => {
    const scoped = context({ ...input, gateway: { ...input.gateway, scopes: { default: ['operator.read', 'operator.write'] } } });
    const d = allowed(decide(facts(user), scoped));
    expect(headerValues(upstreamHeaders(d, scoped.rules), 'x-openclaw-scopes')).toEqual(['operator.read,operator.write']);
    expect(decodeJwt(d.assertion)).toMatchObject({ scope: 'operator.read operator.write' });
    expect(decodeJwt(allowed(decide(facts(user), context(TRUSTED))).assertion)).not.toHaveProperty('scope');
  });

  test('an upgrade is re-issued as exactly Connection: upgrade', () => {
    const ctx = context(input);
    const out = upstreamHeaders(
      allowed(decide(facts([...user, 'Connection', 'Upgrade, x-forwarded-user', 'Upgrade', 'websocket'], { upgrade: true }), ctx)),
      ctx.rules,
    );
    expect(headerValues(out, 'connection')).toEqual(['upgrade']);
    expect(headerValues(out, 'upgrade')).toEqual(['websocket']);
    expect(headerValues(out, 'x-forwarded-user')).toEqual(['alice@example.com']);
  });

  // Header names are data: names that are also Object.prototype members must be carried
  // like any other, never merged with what the prototype holds.
  test('header names like constructor and __proto__ are plain data', () => {
    const ctx = context(input);
    const d = allowed(decide(facts([...user, 'constructor', 'c', '__proto__', 'p', 'toString', 't', 'hasOwnProperty', 'h']), ctx));
    const out = upstreamHeaders(d, ctx.rules);
    expect(headerPairs(out).filter(([k]) => ['constructor', '__proto__', 'tostring', 'hasownproperty'].includes(k))).toEqual([
      ['constructor', 'c'],
      ['__proto__', 'p'],
      ['tostring', 't'],
      ['hasownproperty', 'h'],
    ]);
  });
});
