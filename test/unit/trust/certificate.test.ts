// Who a peer is by certificate, and the source stage's four modes: the parsing of Envoy's
// x-forwarded-client-cert (honest headers as Envoy writes them, and forged or broken ones)
// and of Node's subject and SAN forms; then address, certificate, either and both.
import {
  certificateAllowedBy,
  certificateOfPeer,
  compileCertificateRules,
  parseSubject,
  parseSubjectAltName,
  parseXfcc,
} from '../../../src/trust/certificate.js';
import { checkSource, recheckSource, refusedByAddress, type SourceRules } from '../../../src/trust/source.js';
import { TrustedSet } from '../../../src/trust/trusted-set.js';

const TRAEFIK = 'spiffe://cluster.local/ns/traefik/sa/traefik';
const ATTACKER = 'spiffe://cluster.local/ns/default/sa/attacker';

describe('x-forwarded-client-cert', () => {
  test("Envoy's own examples parse, quoted subjects with commas included", () => {
    // From Envoy's header documentation.
    expect(
      parseXfcc(
        'By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com',
      ),
    ).toMatchObject({ ok: false });
    expect(
      parseXfcc(
        'By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com',
      ),
    ).toEqual({
      ok: true,
      certificates: [
        { subject: [], dnsNames: [], uris: ['http://testclient.lyft.com'] },
        { subject: [], dnsNames: [], uris: ['http://frontend.lyft.com'] },
      ],
    });
    expect(
      parseXfcc(`By=spiffe://cluster.local/ns/claw/sa/claw;Hash=abc;Subject="CN=traefik,O=ingress\\, inc.";URI=${TRAEFIK};DNS=traefik.traefik.svc;DNS=traefik`),
    ).toEqual({
      ok: true,
      certificates: [
        {
          subject: [
            ['CN', 'traefik'],
            ['O', 'ingress, inc.'],
          ],
          dnsNames: ['traefik.traefik.svc', 'traefik'],
          uris: [TRAEFIK],
        },
      ],
    });
    expect(parseXfcc('By=x;Hash=y;Subject="";URI=;DNS=')).toEqual({ ok: true, certificates: [{ subject: [], dnsNames: [], uris: [] }] });
  });

  test.each([
    ['empty', ''],
    ['unterminated quote', `URI=${TRAEFIK};Subject="CN=a`],
    ['a stray quote', 'URI=spiffe://a"b'],
    ['no key', `=${TRAEFIK}`],
    ['an unknown key', `Role=admin;URI=${TRAEFIK}`],
    ['a pair without =', `URI=${TRAEFIK};admin`],
    ['too many elements', Array.from({ length: 17 }, () => `URI=${TRAEFIK}`).join(',')],
    ['too long', `URI=spiffe://x/${'a'.repeat(16_400)}`],
    // The third adversarial pass: a backslash outside quotes swallowed the separator, so the
    // client's element absorbed the one the mesh proxy appended.
    ["a backslash outside quotes before the proxy's comma", `URI=${TRAEFIK};By=\\,By=spiffe://cluster.local/ns/claw/sa/claw;URI=${ATTACKER}`],
    ['an escaped backslash in quotes (two readings of \\\\")', `Subject="CN=a\\\\";URI=${TRAEFIK}`],
    ['a key twice in one element', `By=a;By=b;URI=${TRAEFIK}`],
    ['blanks around a separator', `URI=${TRAEFIK}; DNS=x`],
    ['an empty element', `URI=${TRAEFIK},,URI=${TRAEFIK}`],
    ['text after a closing quote', `Subject="CN=a"x;URI=${TRAEFIK}`],
  ])('refused when malformed: %s', (_name, value) => {
    expect(parseXfcc(value)).toMatchObject({ ok: false, problem: expect.any(String) });
  });

  test('subjects: RFC 4514 escapes and quotes; names case-insensitive', () => {
    expect(parseSubject('cn=traefik, O=ingress')).toEqual([
      ['CN', 'traefik'],
      ['O', 'ingress'],
    ]);
    expect(parseSubject('CN=a\\,b,O="x,y"')).toEqual([
      ['CN', 'a,b'],
      ['O', 'x,y'],
    ]);
    for (const bad of ['', 'traefik', '=x', 'CN=a\\', '1CN=x']) expect(parseSubject(bad)).toBeUndefined();
  });

  test("Node's SAN string, with a JSON-quoted value that holds a comma", () => {
    expect(parseSubjectAltName(`DNS:traefik.svc, URI:${TRAEFIK}, IP Address:10.0.0.1, DNS:"a, b"`)).toEqual({
      dnsNames: ['traefik.svc', 'a, b'],
      uris: [TRAEFIK],
    });
    expect(certificateOfPeer({ subject: { CN: 'traefik', O: ['a', 'b'] }, subjectaltname: `URI:${TRAEFIK}` })).toEqual({
      subject: [
        ['CN', 'traefik'],
        ['O', 'a'],
        ['O', 'b'],
      ],
      dnsNames: [],
      uris: [TRAEFIK],
    });
  });

  test('any listed name is enough; a subject must hold every attribute listed', () => {
    const rules = compileCertificateRules({
      subjects: ['CN=traefik,O=ingress'],
      dnsNames: ['Traefik.Traefik.svc'],
      uris: ['https://proxy.example'],
      spiffeIds: [TRAEFIK],
    });
    const cert = (over: object) => ({ subject: [], dnsNames: [], uris: [], ...over });
    expect(certificateAllowedBy(cert({ uris: [TRAEFIK] }), rules)).toBe(`spiffe:${TRAEFIK}`);
    expect(certificateAllowedBy(cert({ dnsNames: ['traefik.traefik.svc'] }), rules)).toBe('dns:traefik.traefik.svc');
    expect(certificateAllowedBy(cert({ uris: ['https://proxy.example'] }), rules)).toBe('uri:https://proxy.example');
    expect(
      certificateAllowedBy(
        cert({
          subject: [
            ['O', 'ingress'],
            ['CN', 'traefik'],
            ['C', 'DE'],
          ],
        }),
        rules,
      ),
    ).toBe('subject:CN=traefik,O=ingress');
    expect(certificateAllowedBy(cert({ subject: [['CN', 'traefik']] }), rules)).toBeUndefined();
    expect(certificateAllowedBy(cert({ uris: [ATTACKER], dnsNames: ['traefik'] }), rules)).toBeUndefined();
  });
});

describe('the source stage', () => {
  const certificates = compileCertificateRules({ subjects: [], dnsNames: [], uris: [], spiffeIds: [TRAEFIK] });
  const rules = (require: SourceRules['require'], from: SourceRules['from'] = 'tls'): SourceRules => ({ require, from, certificates });
  const trusted = new TrustedSet(
    [
      { cidr: '10.0.0.1', source: 'static' },
      { cidr: '127.0.0.6', source: 'static' },
    ],
    true,
  );
  const good = { subject: [], dnsNames: [], uris: [TRAEFIK] };
  const other = { subject: [], dnsNames: [], uris: [ATTACKER] };
  const check = (peer: string, require: SourceRules['require'], tlsCertificate?: typeof good | 'unverified') =>
    checkSource({ peer, tlsCertificate, rawHeaders: [] }, trusted, rules(require));

  test.each([
    // peer, require, certificate, allowed, detail
    ['10.0.0.1', 'address', undefined, true, ''],
    ['10.0.0.2', 'address', good, false, 'not_in_trusted_set'],
    ['10.0.0.2', 'certificate', good, true, ''],
    ['10.0.0.1', 'certificate', undefined, false, 'certificate_missing'],
    ['10.0.0.2', 'certificate', 'unverified', false, 'certificate_unverified'],
    ['10.0.0.2', 'certificate', other, false, 'certificate_not_allowed'],
    ['10.0.0.1', 'either', undefined, true, ''],
    ['10.0.0.2', 'either', good, true, ''],
    ['10.0.0.2', 'either', other, false, 'not_in_trusted_set: no match in static (2 entries); certificate_not_allowed'],
    ['10.0.0.1', 'both', good, true, ''],
    ['10.0.0.1', 'both', other, false, 'certificate_not_allowed'],
    ['10.0.0.2', 'both', good, false, 'not_in_trusted_set'],
    ['0.0.0.0', 'certificate', good, false, 'unspecified'],
  ] as const)('%s, require %s, certificate %j: allowed %s', (peer, require, cert, allowed, detail) => {
    const r = check(peer, require, cert as never);
    expect(r.ok).toBe(allowed);
    if (!r.ok) expect(r.detail).toContain(detail);
  });

  describe('refused by address alone, known at accept (the bound on such connections)', () => {
    const requires = ['address', 'certificate', 'either', 'both'] as const;
    const peers = ['10.0.0.1', '10.0.0.2', '127.0.0.6', '127.0.0.1', '0.0.0.0', '::', '::ffff:10.0.0.1', '::ffff:10.0.0.2', 'not an address', ''];

    test.each([
      ['10.0.0.2', 'address', true],
      ['10.0.0.2', 'both', true],
      ['10.0.0.2', 'either', false],
      ['10.0.0.2', 'certificate', false],
      ['10.0.0.1', 'address', false],
      ['10.0.0.1', 'certificate', false],
      ['0.0.0.0', 'certificate', true],
      ['not an address', 'either', true],
    ] as const)('%s, require %s: %s', (peer, require, refused) => {
      expect(refusedByAddress(peer, trusted, rules(require))).toBe(refused);
    });

    // Never wrong the other way: a peer it refuses is refused by the source stage whatever
    // certificate the connection or a request brings.
    test('a peer refused by address is refused by the source stage with any certificate', () => {
      const honest = `By=spiffe://cluster.local/ns/claw/sa/claw;Hash=1;Subject="";URI=${TRAEFIK}`;
      let refusedCount = 0;
      for (const require of requires) {
        for (const peer of peers) {
          if (!refusedByAddress(peer, trusted, rules(require))) continue;
          refusedCount++;
          for (const cert of [undefined, 'unverified', good, other] as const) expect(check(peer, require, cert as never).ok).toBe(false);
          expect(checkSource({ peer, rawHeaders: ['x-forwarded-client-cert', honest] }, trusted, rules(require, 'xfcc')).ok).toBe(false);
        }
      }
      expect(refusedCount).toBeGreaterThan(requires.length);
    });
  });

  test('trustedBy names both the address source and the certificate', () => {
    expect(check('10.0.0.1', 'both', good)).toMatchObject({ ok: true, trustedBy: ['static', `certificate spiffe:${TRAEFIK}`], certificate: good });
  });

  describe('behind a mesh: the proxy by address, the client by the XFCC it reports', () => {
    const xfcc = (peer: string, ...values: string[]) =>
      checkSource({ peer, rawHeaders: values.flatMap((v) => ['X-Forwarded-Client-Cert', v]) }, trusted, rules('both', 'xfcc'));
    const honest = `By=spiffe://cluster.local/ns/claw/sa/claw;Hash=1;Subject="";URI=${TRAEFIK}`;

    test('honest: the mesh proxy reports the trusted workload', () => {
      expect(xfcc('127.0.0.6', honest)).toMatchObject({ ok: true, certificate: { uris: [TRAEFIK] } });
    });

    test('forged by the client, and the proxy appends the real one: the last element decides', () => {
      const forgedFirst = `URI=${TRAEFIK},By=spiffe://cluster.local/ns/claw/sa/claw;Hash=2;URI=${ATTACKER}`;
      expect(xfcc('127.0.0.6', forgedFirst)).toMatchObject({ ok: false, detail: 'certificate_not_allowed' });
    });

    test('an honest-looking header from anywhere but the mesh proxy is refused', () => {
      expect(xfcc('127.0.0.1', honest)).toMatchObject({ ok: false, detail: expect.stringContaining('not_in_trusted_set') });
      expect(xfcc('10.9.9.9', honest)).toMatchObject({ ok: false });
    });

    test('missing, doubled or malformed headers are refused', () => {
      expect(xfcc('127.0.0.6')).toMatchObject({ ok: false, detail: 'xfcc_missing' });
      expect(xfcc('127.0.0.6', honest, honest)).toMatchObject({ ok: false, detail: 'xfcc_duplicated' });
      expect(xfcc('127.0.0.6', `URI=${TRAEFIK};Subject="CN=x`)).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/^xfcc_malformed: at \d+: a quoted value is not closed$/),
      });
    });

    test('a connection allowed before a reload is judged again by the certificate it was trusted by', () => {
      const allowed = xfcc('127.0.0.6', honest);
      if (!allowed.ok) throw new Error('expected allowed');
      expect(recheckSource('127.0.0.6', allowed.certificate, trusted, rules('both', 'xfcc'))).toBe(true);
      const narrower = { ...rules('both', 'xfcc'), certificates: compileCertificateRules({ subjects: [], dnsNames: [], uris: [], spiffeIds: [ATTACKER] }) };
      expect(recheckSource('127.0.0.6', allowed.certificate, trusted, narrower)).toBe(false);
    });
  });
});
