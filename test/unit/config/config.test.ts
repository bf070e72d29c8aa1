import { parseConfig } from '../../../src/config/load.js';
import { configSchema } from '../../../src/config/schema.js';
import { TrustedSet } from '../../../src/trust/trusted-set.js';

test('an empty file is refused (its defaults trust nobody); an empty mapping is the documented defaults', () => {
  for (const text of ['', '# nothing yet\n', '---\n'])
    expect(parseConfig(text, 'sidecar.yaml')).toEqual({ ok: false, problems: [expect.stringMatching(/^sidecar\.yaml: the file is empty/)] });
  const r = parseConfig('{}');
  expect(r.ok).toBe(true);
  if (!r.ok) return;
  expect(r.config).toMatchObject({
    listen: { host: '0.0.0.0', port: 8080, allowedOrigins: [], maxWebSocketLifetimeSeconds: 0 },
    admin: { host: '0.0.0.0', port: 9090 },
    upstream: { url: 'http://127.0.0.1:18789' },
    trust: { cidrs: [], allowLoopback: false },
    identity: {
      userHeader: 'x-auth-request-email',
      emailHeader: '',
      groupsHeader: '',
      requiredHeaders: [],
      maxValueBytes: 256,
      allowUsers: [],
      allowGroups: [],
      allowEmailDomains: [],
    },
    assertion: {
      header: 'x-trusted-proxy-assertion',
      keysDir: '/etc/trusted-proxy-sidecar/keys',
      activeKeyId: '',
      issuer: 'trusted-proxy-sidecar',
      audience: 'gateway',
      ttlSeconds: 30,
    },
    gateway: { userHeader: 'x-forwarded-user', scopesHeader: '', scopes: { default: [], byGroup: {} } },
    logging: { level: 'info', identity: 'plain' },
  });
});

test('header names are lower-cased', () => {
  const r = parseConfig('identity: { userHeader: X-Auth-Request-User, requiredHeaders: [X-Token] }\ngateway: { scopesHeader: X-OpenClaw-Scopes }');
  expect(r).toMatchObject({
    ok: true,
    config: { identity: { userHeader: 'x-auth-request-user', requiredHeaders: ['x-token'] }, gateway: { scopesHeader: 'x-openclaw-scopes' } },
  });
});

test('every problem is listed at once, by key path', () => {
  const r = parseConfig(`
listen: { port: 70000, allowedOrigins: [not-a-url], certFile: /tmp/c.pem }
admin: { port: -1 }
upstream: { url: 'ftp://gateway' }
trust: { cidrs: [10.0.0.0/8, 10.0.0.0/33, not-an-ip], allowLoopback: 'yes' }
identity: { userHeader: 'bad header', maxValueBytes: 1 }
assertion: { ttlSeconds: 0, issuer: '' }
gateway: { scopes: { byGroup: { admins: [''] } } }
logging: { identity: sometimes }
unknownKey: 1
`);
  expect(r.ok).toBe(false);
  if (r.ok) return;
  const paths = r.problems.map((p) => p.slice(0, p.indexOf(':')));
  expect(paths.sort()).toEqual(
    [
      '(root)',
      'admin.port',
      'assertion.issuer',
      'assertion.ttlSeconds',
      'gateway.scopes.byGroup.admins.0',
      'identity.maxValueBytes',
      'identity.userHeader',
      'listen.allowedOrigins.0',
      'listen.certFile',
      'listen.port',
      'logging.identity',
      'trust.allowLoopback',
      'trust.cidrs.1',
      'trust.cidrs.2',
      'upstream.url',
    ].sort(),
  );
  expect(r.problems.find((p) => p.startsWith('(root)'))).toMatch(/unknownKey/);
});

test('YAML errors and duplicate keys are refused', () => {
  expect(parseConfig('listen: [')).toMatchObject({ ok: false });
  expect(parseConfig('listen: { port: 1 }\nlisten: { port: 2 }')).toMatchObject({ ok: false });
});

// The trusted set parses addresses more strictly than a general IP library (no octal,
// hex or short IPv4 forms, no zones): the config must refuse what it cannot build, or
// the sidecar would pass check-config and then fail at start.
test.each(['010.0.0.1', '0x0a.0.0.1', '10.1', '10', 'fe80::1%eth0', '::ffff:10.0.0.0/8', '10.0.0.0/8/1'])(
  'trust.cidrs %j is refused as a listed problem',
  (cidr) => {
    const r = parseConfig(`trust: { cidrs: ['${cidr}'] }`);
    expect(r).toEqual({ ok: false, problems: [expect.stringMatching(/^trust\.cidrs\.0: /)] });
  },
);

test('every CIDR the config accepts builds a trusted set', () => {
  const cidrs = ['10.0.0.0/8', '10.0.0.1', '2001:db8::/32', '::ffff:10.0.0.0/104', '::1', '192.0.2.1/32'];
  const parsed = configSchema.parse({ trust: { cidrs, allowLoopback: true } });
  expect(
    () =>
      new TrustedSet(
        parsed.trust.cidrs.map((cidr) => ({ cidr, source: 'static' })),
        false,
      ),
  ).not.toThrow();
});

describe('loopback by membership', () => {
  test('allowLoopback without a listed loopback address is refused with the fix, as is a loopback CIDR it would ignore', () => {
    expect(parseConfig('trust: { allowLoopback: true, cidrs: [10.0.0.0/8] }')).toEqual({
      ok: false,
      problems: [expect.stringMatching(/^trust\.allowLoopback: .*list the loopback addresses to trust in trust\.cidrs \(e\.g\. 127\.0\.0\.1\/32\)/)],
    });
    expect(parseConfig('trust: { allowLoopback: false, cidrs: [10.0.0.0/8, 127.0.0.6, "::1"] }')).toEqual({
      ok: false,
      problems: ['trust.cidrs: 127.0.0.6, ::1 trusts nothing while allowLoopback is false: set allowLoopback: true or remove it'],
    });
  });

  test.each([
    ['127.0.0.6', true],
    ['::1', true],
    ['127.0.0.0/8', true],
    // a range reaching into loopback lists it too; allowLoopback decides
    ['0.0.0.0/0', true],
    ['0.0.0.0/0', false],
    ['10.0.0.0/8', false],
  ])('trust.cidrs [%s] with allowLoopback %s is accepted', (cidr, allowLoopback) => {
    expect(parseConfig(`trust: { allowLoopback: ${allowLoopback}, cidrs: ["${cidr}"] }`)).toMatchObject({ ok: true });
  });
});

test('trust by certificate: every missing piece is listed', () => {
  const r = parseConfig('trust: { require: certificate }\nlisten: { clientCAFile: /ca.pem }');
  expect(r).toMatchObject({ ok: false });
  if (r.ok) return;
  expect(r.problems).toEqual(expect.arrayContaining(['listen.clientCAFile: client certificates need TLS: set certFile and keyFile too']));
  const across = parseConfig(
    'listen: { certFile: /c.pem, keyFile: /k.pem }\ntrust: { require: either, clientCertificates: { from: xfcc, spiffeIds: ["spiffe://td/x"] } }',
  );
  expect(across).toEqual({
    ok: false,
    problems: ['trust.require: with clientCertificates.from: xfcc it must be both: the mesh proxy by its address, the client by the certificate it reports'],
  });
  const names = parseConfig(
    'listen: { certFile: /c.pem, keyFile: /k.pem, clientCAFile: /ca.pem }\ntrust: { require: certificate, clientCertificates: { subjects: [traefik], spiffeIds: ["https://x"] } }',
  );
  expect(names).toMatchObject({
    ok: false,
    problems: expect.arrayContaining([
      expect.stringMatching(/^trust\.clientCertificates\.subjects\.0: must be a distinguished name/),
      expect.stringMatching(/^trust\.clientCertificates\.spiffeIds\.0: must be a SPIFFE ID/),
    ]),
  });
  expect(parseConfig('listen: { certFile: /c.pem, keyFile: /k.pem }\ntrust: { require: certificate }')).toEqual({
    ok: false,
    problems: expect.arrayContaining([
      expect.stringMatching(/^trust\.clientCertificates: trust\.require is certificate: list the certificates/),
      expect.stringMatching(/^listen\.clientCAFile: trust\.require is certificate: set the CA/),
    ]),
  });
  expect(parseConfig('listen: { certFile: /c.pem, keyFile: /k.pem, clientCAFile: /ca.pem }')).toEqual({
    ok: false,
    problems: ['listen.clientCAFile: client certificates are asked for but never checked: set trust.require'],
  });
});

test('the bound on connections from refused addresses leaves the trusted proxy room under maxConnections', () => {
  expect(parseConfig('listen: { maxConnections: 64 }')).toEqual({
    ok: false,
    problems: ['listen.maxUntrustedConnections: must be below maxConnections (64), or peers refused by address could hold every connection'],
  });
  expect(parseConfig('listen: { maxConnections: 65 }')).toMatchObject({ ok: true });
  expect(parseConfig('listen: { maxConnections: 10, maxUntrustedConnections: 0 }')).toMatchObject({ ok: true });
  // 0: as many as the descriptor limit allows, which the bound is not checked against here.
  expect(parseConfig('listen: { maxUntrustedConnections: 100000 }')).toMatchObject({ ok: true });
});

test('a scope must split back out of the assertion and the header: no comma, blank, quote or backslash', () => {
  const r = parseConfig('gateway: { scopes: { default: ["operator.read", "a,b"], byGroup: { admins: ["operator admin"] } } }');
  expect(r).toMatchObject({
    ok: false,
    problems: [
      expect.stringMatching(/^gateway\.scopes\.default\.1: must be a scope/),
      expect.stringMatching(/^gateway\.scopes\.byGroup\.admins\.0: must be a scope/),
    ],
  });
});

describe('routes', () => {
  const problems = (routes: unknown[]) => {
    const r = configSchema.safeParse({ routes });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  test('a route that no request could take, or that would pass every request, is refused with the rest', () => {
    expect(
      problems([
        { name: 'a', path: '/hooks/', mode: 'machine' },
        { name: 'b', path: '/x/../hooks', mode: 'machine' },
        { name: 'c', path: '/h%6foks', mode: 'machine' },
        { name: 'all', path: '/', mode: 'machine' },
        { name: 'all', path: '/sso', mode: 'sso', scopes: ['x'] },
        { name: 'Bad Name', path: '/ok', mode: 'deny', methods: ['post'] },
      ]),
    ).toEqual([
      expect.stringMatching(/^routes\.0\.path: must be an absolute path that reads one way/),
      expect.stringMatching(/^routes\.1\.path: must be an absolute path that reads one way/),
      expect.stringMatching(/^routes\.2\.path: must be an absolute path that reads one way/),
      expect.stringMatching(/^routes\.5\.name: must be lower-case letters/),
      expect.stringMatching(/^routes\.5\.methods\.0: must be a method in upper case/),
      'routes.3.path: a machine route over every path lets every request through without SSO',
      'routes.4.name: another route is named all',
      expect.stringMatching(/^routes\.4\.mode: untrustedSources, scopes, requestsPerMinutePerSource and maxBodyBytes are for machine routes/),
    ]);
  });
  test('defaults: prefix, any method, the limits of limits.*', () => {
    expect(configSchema.parse({ routes: [{ name: 'hooks', path: '/hooks', mode: 'machine' }] }).routes[0]).toEqual({
      name: 'hooks',
      path: '/hooks',
      match: 'prefix',
      methods: [],
      mode: 'machine',
      maxBodyBytes: -1,
      requestsPerMinutePerSource: 0,
      untrustedSources: false,
      scopes: [],
    });
  });
});
