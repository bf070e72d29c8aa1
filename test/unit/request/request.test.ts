import { compileRules } from '../../../src/decision/rules.js';
import { clientAddress, forwardableClient, forwardedHost, forwardedProto, isValidHost } from '../../../src/request/forwarded.js';
import { DUPLICATED, HeaderNames, readHeaders, singleValue } from '../../../src/request/headers.js';
import { normaliseName, protectedNames } from '../../../src/request/protected.js';
import { isOriginForm, isValidMethod, pathOf } from '../../../src/request/request.js';
import { TrustedSet } from '../../../src/trust/trusted-set.js';
import { config } from '../context.js';

const owned = protectedNames(
  config({
    identity: { emailHeader: 'x-auth-request-user-email', groupsHeader: 'x-auth-request-groups', userHeader: 'x-auth-request-email' },
    gateway: { scopesHeader: 'x-openclaw-scopes' },
    sanitise: { extraNames: ['X-Original-URL'], extraPrefixes: ['x-internal-'] },
  }),
);
const names = new HeaderNames(owned);

describe('protected names', () => {
  test('names fold case, `_` and `.` into one spelling', () => {
    expect(normaliseName('x_auth.request-email')).toBe('x-auth-request-email');
  });

  test.each([
    ['x-auth-request-email', 'x-auth-request-email'],
    ['x_auth_request_email', 'x-auth-request-email'],
    ['x.auth.request.email', 'x-auth-request-email'],
    ['x_auth.request-email', 'x-auth-request-email'],
    // A longer name with a protected prefix is covered too.
    ['x-auth-request-email-verified', 'x-auth-request-email'],
    ['x-auth-request-groups', 'x-auth-request-groups'],
    ['x-trusted-proxy-assertion', 'x-trusted-proxy-assertion'],
    ['x_trusted_proxy_assertion', 'x-trusted-proxy-assertion'],
    ['x-forwarded-user', 'x-forwarded-user'], // gateway.userHeader, listed before the built-ins
    ['x-forwarded-for', 'x-forwarded-'],
    ['x-forwarded-prefix', 'x-forwarded-'],
    ['x_forwarded_host', 'x-forwarded-'],
    ['x.forwarded.proto', 'x-forwarded-'],
    ['x-openclaw-scopes', 'x-openclaw-scopes'],
    ['x_openclaw_scopes', 'x-openclaw-scopes'],
    ['forwarded', 'forwarded'],
    ['x-real-ip', 'x-real-ip'],
    ['x_real_ip', 'x-real-ip'],
    ['x-original-url', 'x-original-url'],
    ['x_original_url', 'x-original-url'],
    ['x-internal-token', 'x-internal-'],
    ['x.internal.anything', 'x-internal-'],
  ])('%s is owned (rule %s)', (name, rule) => {
    expect(owned.match(name)).toBe(rule);
  });

  test.each(['x-auth-request', 'x-auth-requestemail', 'authorization', 'cookie', 'host', 'origin', 'x-request-id', 'x-forwarded', 'content-type'])(
    '%s is not owned',
    (name) => {
      expect(owned.match(name)).toBeUndefined();
    },
  );

  test('with the gateway header turned off, the built-in names stay owned', () => {
    const bare = protectedNames(config({ gateway: { userHeader: '' } }));
    expect(bare.prefixes).not.toContain('');
    expect(bare.match('x-forwarded-user')).toBe('x-forwarded-');
    expect(bare.match('cookie')).toBeUndefined();
  });
});

describe('readHeaders', () => {
  test('owned and hop-by-hop lines are stripped, duplicates kept apart, the rest forwarded by lower-case name', () => {
    const h = readHeaders(
      [
        'Host',
        'a.example',
        'X-Auth-Request-Email',
        'alice@example.com',
        'X_Auth_Request_Email',
        'mallory@example.com',
        'Cookie',
        'a=1',
        'Cookie',
        'b=2',
        'Keep-Alive',
        'timeout=5',
        'Transfer-Encoding',
        'chunked',
        'TE',
        'trailers',
        'Proxy-Authorization',
        'Basic x',
      ],
      names,
    );
    expect(h.forward).toEqual(['host', 'a.example', 'cookie', 'a=1', 'cookie', 'b=2']);
    expect(h.read.get('x-auth-request-email')).toEqual(['alice@example.com']);
    expect(h.read.get('x_auth_request_email')).toEqual(['mallory@example.com']);
    expect(h.read.get('cookie')).toEqual(['a=1', 'b=2']);
    expect(h.read.has('keep-alive')).toBe(false);
    expect(h.stripped).toEqual(['x-auth-request-email', 'x-auth-request-email', 'hop-by-hop', 'hop-by-hop', 'hop-by-hop', 'hop-by-hop']);
    expect(h.count).toBe(9);
    expect(h.upgrade).toBeUndefined();
  });

  test('a header named in Connection is gone before anything reads it', () => {
    const h = readHeaders(
      [
        'Connection',
        'close, X-Auth-Request-Email',
        'connection',
        ' x-forwarded-for ,Cookie',
        'X-Auth-Request-Email',
        'a@b.c',
        'X-Forwarded-For',
        '1.2.3.4',
        'Cookie',
        'c',
        'Accept',
        '*/*',
      ],
      names,
    );
    expect(h.read.has('x-auth-request-email')).toBe(false);
    expect(h.read.has('x-forwarded-for')).toBe(false);
    expect(h.read.has('cookie')).toBe(false);
    expect(h.forward).toEqual(['accept', '*/*']);
    expect(h.stripped.filter((s) => s === 'connection-nominated')).toHaveLength(3);
  });

  test('Connection cannot nominate close, keep-alive or upgrade away', () => {
    const h = readHeaders(['Connection', 'Upgrade, keep-alive, close', 'Upgrade', 'websocket', 'Accept', 'x'], names);
    expect(h.upgrade).toBe('websocket');
    expect(h.forward).toEqual(['accept', 'x']);
  });

  test('singleValue tells absent, one and duplicated apart', () => {
    const h = readHeaders(['A', '1', 'B', '2', 'b', '3'], names);
    expect(singleValue(h.read, 'a')).toBe('1');
    expect(singleValue(h.read, 'b')).toBe(DUPLICATED);
    expect(singleValue(h.read, 'c')).toBeUndefined();
  });
});

describe('header names, classified once per rules', () => {
  const reads = new Set(['host', 'x-auth-request-email']);
  const corpus = [
    'Host',
    'host',
    'HOST',
    'X-Auth-Request-Email',
    'x_auth_request_email',
    'X.Auth.Request.Email',
    'X-Forwarded-For',
    'x-forwarded-prefix',
    'Connection',
    'Keep-Alive',
    'Upgrade',
    'TE',
    'Proxy-Authorization',
    'Cookie',
    'X-Internal-Token',
    'X-Original-URL',
    'Accept',
    'x-auth-request',
    `X-${'a'.repeat(70)}`,
    `X-Forwarded-${'b'.repeat(70)}`,
  ];

  test('an answer from the memo is the answer worked out afresh, in every spelling, also after the memo started over', () => {
    const warm = new HeaderNames(owned, reads);
    const flood = Array.from({ length: 600 }, (_, i) => `x-invented-${i}`);
    for (const round of [corpus, corpus, flood, corpus]) {
      for (const name of round) expect(warm.classify(name)).toEqual(new HeaderNames(owned, reads).classify(name));
    }
    expect(warm.classify('X_Auth_Request_Email')).toEqual({ lower: 'x_auth_request_email', hopByHop: false, owned: 'x-auth-request-email', read: false });
    expect(warm.classify('Keep-Alive')).toEqual({ lower: 'keep-alive', hopByHop: true, owned: undefined, read: false });
    expect(warm.classify('Host')).toEqual({ lower: 'host', hopByHop: false, owned: undefined, read: true });
  });

  test('names a client invents cannot grow the memo: bounded in count, long names never kept', () => {
    const memo = new HeaderNames(owned, reads);
    for (let i = 0; i < 10_000; i++) memo.classify(`x-invented-${i}`);
    expect(memo.remembered).toBeGreaterThan(0);
    expect(memo.remembered).toBeLessThanOrEqual(256);
    const long = new HeaderNames(owned, reads);
    for (let i = 0; i < 100; i++) long.classify(`x-${'a'.repeat(70)}-${i}`);
    expect(long.remembered).toBe(0);
  });

  test('each set of rules has its own memo: a reload that protects a name is obeyed at once', () => {
    // A reload compiles new rules; what the old ones remembered must not carry over.
    const before = compileRules(config({})).headers;
    const after = compileRules(config({ sanitise: { extraNames: ['X-Tenant'] } })).headers;
    expect(before.classify('X-Tenant').owned).toBeUndefined();
    expect(after.classify('X-Tenant').owned).toBe('x-tenant');
    expect(readHeaders(['X-Tenant', 'a'], after).forward).toEqual([]);
  });
});

describe('X-Forwarded-For, walked right to left', () => {
  const trusted = new TrustedSet(
    [
      { cidr: '10.0.0.0/8', source: 'static' },
      { cidr: '2001:db8::/32', source: 'static' },
    ],
    false,
  );
  const xff = (...lines: string[]) => new Map([['x-forwarded-for', lines]]);

  test.each([
    // [header lines, peer, expected client]
    [['203.0.113.9'], '10.0.0.2', '203.0.113.9'],
    [['198.51.100.1, 203.0.113.9'], '10.0.0.2', '203.0.113.9'], // left-most is the client's own pick
    [['203.0.113.9, 10.0.0.3, 10.0.0.4'], '10.0.0.2', '203.0.113.9'], // trusted hops skipped
    [['203.0.113.9', '10.0.0.3'], '10.0.0.2', '203.0.113.9'], // several lines are one list
    [['198.51.100.1, 203.0.113.9, 10.0.0.3'], '10.0.0.2', '203.0.113.9'],
    [['::ffff:203.0.113.9'], '10.0.0.2', '203.0.113.9'],
    [['2001:db9::1, 2001:db8::5'], '10.0.0.2', '2001:db9::1'],
    [['10.0.0.3, 10.0.0.4'], '10.0.0.2', '10.0.0.2'], // all trusted: the proxy itself
    [['198.51.100.1, garbage'], '10.0.0.2', '10.0.0.2'], // malformed ends trust
    [['198.51.100.1, 010.0.0.1'], '10.0.0.2', '10.0.0.2'],
    [['198.51.100.1, 203.0.113.9:1234'], '10.0.0.2', '10.0.0.2'],
    [['198.51.100.1, [2001:db9::1]'], '10.0.0.2', '10.0.0.2'],
    [['198.51.100.1, '], '10.0.0.2', '10.0.0.2'], // empty entry is malformed
    [['198.51.100.1, 127.0.0.1'], '10.0.0.2', '10.0.0.2'], // loopback ends the walk
    [['198.51.100.1, ::ffff:127.0.0.1'], '10.0.0.2', '10.0.0.2'],
    [['198.51.100.1, 0.0.0.0'], '10.0.0.2', '10.0.0.2'],
    [['198.51.100.1, ::'], '10.0.0.2', '10.0.0.2'],
    [[], '::ffff:10.0.0.2', '10.0.0.2'],
  ])('%j via %s is %s', (lines, peer, expected) => {
    const read = lines.length > 0 ? xff(...lines) : new Map<string, string[]>();
    expect(clientAddress(read, peer, trusted)).toBe(expected);
  });

  test('loopback is never forwarded as a client address', () => {
    expect(forwardableClient('127.0.0.1')).toBe(false);
    expect(forwardableClient('::1')).toBe(false);
    expect(forwardableClient('::ffff:127.0.0.1')).toBe(false);
    expect(forwardableClient('garbage')).toBe(false);
    expect(forwardableClient('203.0.113.9')).toBe(true);
    expect(forwardableClient('2001:db8::1')).toBe(true);
  });
});

describe('forwarded scheme, host and target', () => {
  const one = (name: string, value: string) => new Map([[name, [value]]]);

  test('X-Forwarded-Proto is taken only when it is http or https', () => {
    expect(forwardedProto(one('x-forwarded-proto', 'HTTPS'), false)).toBe('https');
    expect(forwardedProto(one('x-forwarded-proto', ' http '), true)).toBe('http');
    expect(forwardedProto(one('x-forwarded-proto', 'https, http'), false)).toBe('http');
    expect(forwardedProto(one('x-forwarded-proto', 'javascript'), true)).toBe('https');
    expect(forwardedProto(new Map([['x-forwarded-proto', ['https', 'https']]]), false)).toBe('http');
    expect(forwardedProto(new Map(), true)).toBe('https');
  });

  test('X-Forwarded-Host when valid, else Host, else nothing', () => {
    expect(
      forwardedHost(
        new Map([
          ['x-forwarded-host', ['app.example:8443']],
          ['host', ['sidecar:8080']],
        ]),
      ),
    ).toBe('app.example:8443');
    expect(
      forwardedHost(
        new Map([
          ['x-forwarded-host', ['evil.example/path']],
          ['host', ['sidecar:8080']],
        ]),
      ),
    ).toBe('sidecar:8080');
    expect(
      forwardedHost(
        new Map([
          ['x-forwarded-host', ['a.example, b.example']],
          ['host', ['h']],
        ]),
      ),
    ).toBe('h');
    expect(
      forwardedHost(
        new Map([
          ['x-forwarded-host', ['a', 'b']],
          ['host', ['h']],
        ]),
      ),
    ).toBe('h');
    expect(forwardedHost(one('host', 'bad host'))).toBeUndefined();
    expect(forwardedHost(new Map())).toBeUndefined();
  });

  test.each(['a', 'a.example', 'a-b.example:1', '[2001:db8::1]:443', '10.0.0.1'])('%s is a host', (h) => {
    expect(isValidHost(h)).toBe(true);
  });
  test.each(['', 'a b', 'a.example/x', 'user@a', '-a.example', 'a.example:', 'a.example:123456', 'a\r\nb', `${'a'.repeat(64)}.example`])(
    '%j is not a host',
    (h) => {
      expect(isValidHost(h)).toBe(false);
    },
  );

  test('methods are tokens; targets are origin-form', () => {
    expect(isValidMethod('GET')).toBe(true);
    expect(isValidMethod('PROPFIND')).toBe(true);
    expect(isValidMethod('GET /')).toBe(false);
    expect(isValidMethod('')).toBe(false);
    expect(isOriginForm('/a/b?c=d')).toBe(true);
    expect(isOriginForm('/')).toBe(true);
    expect(isOriginForm('//a')).toBe(true); // empty segments are still an absolute path
    for (const bad of ['', 'a/b', 'http://evil.example/', '/a b', '/a#frag', '/a\tb', '/a\u0000', '*', `/${'a'.repeat(8192)}`]) {
      expect(isOriginForm(bad)).toBe(false);
    }
    expect(pathOf('/a/b?c=d?e')).toBe('/a/b');
    expect(pathOf('/a')).toBe('/a');
  });
});
