import { isLoopback, isUnspecified, parseAddress, parseRange } from '../../src/trust/address.js';
import { TrustRegistry } from '../../src/trust/registry.js';
import { TrustedSet } from '../../src/trust/trusted-set.js';

describe('parseAddress', () => {
  test.each([
    ['10.0.0.1', 4, '10.0.0.1'],
    ['::ffff:10.0.0.1', 4, '10.0.0.1'],
    ['::FFFF:10.0.0.1', 4, '10.0.0.1'],
    ['0:0:0:0:0:ffff:10.0.0.1', 4, '10.0.0.1'],
    ['::ffff:a00:1', 4, '10.0.0.1'],
    ['::ffff:127.0.0.1', 4, '127.0.0.1'],
    ['2001:DB8::1', 6, '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 6, '2001:db8::1'],
    ['0:0:0:0:0:0:0:1', 6, '::1'],
  ])('%s is %s %s', (input, family, text) => {
    expect(parseAddress(input)).toMatchObject({ family, text });
  });

  test.each([
    '010.0.0.1', // octal to some parsers
    '10.0.0.01',
    '0x0a.0.0.1',
    '10.1',
    '167772161',
    '256.0.0.1',
    '10.0.0.1.',
    ' 10.0.0.1',
    '10.0.0.1:8080',
    '[2001:db8::1]',
    '[2001:db8::1]:443',
    'fe80::1%eth0',
    '2001:db8::g',
    'unknown',
    '',
  ])('%j is malformed', (input) => {
    expect(parseAddress(input)).toBeNull();
  });

  test('loopback and unspecified in every spelling', () => {
    for (const a of ['127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1', '::ffff:7f00:1']) {
      expect(isLoopback(parseAddress(a)!)).toBe(true);
    }
    for (const a of ['0.0.0.0', '::', '::ffff:0.0.0.0', '0.1.2.3']) expect(isUnspecified(parseAddress(a)!)).toBe(true);
    for (const a of ['10.0.0.1', '2001:db8::1', '128.0.0.1', '::2']) {
      expect(isLoopback(parseAddress(a)!)).toBe(false);
      expect(isUnspecified(parseAddress(a)!)).toBe(false);
    }
  });
});

describe('parseRange', () => {
  test('IPv4, IPv6 and mapped CIDRs become inclusive ranges', () => {
    expect(parseRange('10.0.0.0/8')).toEqual({ family: 4, start: 0x0a000000n, end: 0x0affffffn });
    expect(parseRange('10.1.2.3/8')).toEqual({ family: 4, start: 0x0a000000n, end: 0x0affffffn });
    expect(parseRange('10.0.0.7')).toEqual({ family: 4, start: 0x0a000007n, end: 0x0a000007n });
    expect(parseRange('::ffff:10.0.0.0/104')).toEqual(parseRange('10.0.0.0/8'));
    expect(parseRange('0.0.0.0/0')).toEqual({ family: 4, start: 0n, end: 0xffffffffn });
    expect(parseRange('2001:db8::/32')).toEqual({
      family: 6,
      start: 0x20010db8n << 96n,
      end: (0x20010db8n << 96n) + (1n << 96n) - 1n,
    });
  });

  // A sloppy prefix must never widen trust: `Number('')` is 0, which would be a /0.
  test.each(['10.0.0.1/', '10.0.0.1/-0', '10.0.0.1/ 8', '10.0.0.1/8x', '10.0.0.1/33', '10.0.0.1/0x8', '10.0.0.0/8/1', '::ffff:10.0.0.0/8', '2001:db8::/129'])(
    '%j is refused',
    (cidr) => {
      expect(() => parseRange(cidr)).toThrow();
    },
  );
});

describe('TrustedSet', () => {
  const set = new TrustedSet(
    [
      { cidr: '10.0.0.0/8', source: 'static' },
      { cidr: '10.1.0.0/16', source: 'pods' },
      { cidr: '10.1.2.3', source: 'endpoints' },
      { cidr: '2001:db8::/32', source: 'static' },
      { cidr: '2001:db8:1::/48', source: 'nodes' },
      { cidr: '192.0.2.0/24', source: 'nodes' },
      { cidr: '192.0.2.128/25', source: 'nodes' },
    ],
    false,
  );

  test('overlapping ranges report every source that trusts an address', () => {
    expect(set.lookup('10.2.0.1')).toMatchObject({ trusted: true, sources: ['static'] });
    expect(set.lookup('10.1.0.1')).toMatchObject({ trusted: true, sources: ['pods', 'static'] });
    expect(set.lookup('10.1.2.3')).toMatchObject({ trusted: true, sources: ['endpoints', 'pods', 'static'] });
    expect(set.lookup('10.1.2.4')).toMatchObject({ trusted: true, sources: ['pods', 'static'] });
    expect(set.lookup('10.255.255.255')).toMatchObject({ trusted: true, sources: ['static'] });
    expect(set.lookup('192.0.2.200')).toMatchObject({ trusted: true, sources: ['nodes'] });
    expect(set.lookup('2001:db8:1::5')).toMatchObject({ trusted: true, sources: ['nodes', 'static'] });
    expect(set.lookup('2001:db8:2::5')).toMatchObject({ trusted: true, sources: ['static'] });
  });

  test('range edges are exact', () => {
    expect(set.lookup('9.255.255.255')).toMatchObject({ trusted: false, reason: 'not_in_trusted_set' });
    expect(set.lookup('11.0.0.0')).toMatchObject({ trusted: false, reason: 'not_in_trusted_set' });
    expect(set.lookup('192.0.1.255').trusted).toBe(false);
    expect(set.lookup('192.0.3.0').trusted).toBe(false);
    expect(set.lookup('2001:db7:ffff:ffff:ffff:ffff:ffff:ffff').trusted).toBe(false);
    expect(set.lookup('2001:db9::').trusted).toBe(false);
  });

  test('a mapped peer is classified as its IPv4 self', () => {
    expect(set.lookup('::ffff:10.1.2.3')).toMatchObject({ trusted: true, sources: ['endpoints', 'pods', 'static'] });
    expect(set.lookup('::ffff:11.0.0.1').trusted).toBe(false);
    // An IPv6 range never covers IPv4 peers, mapped or not.
    expect(new TrustedSet([{ cidr: '::/0', source: 's' }], false).lookup('::ffff:10.0.0.1').trusted).toBe(false);
  });

  test('loopback is untrusted unless allowed, in every spelling, whatever the ranges say', () => {
    const wide = new TrustedSet([{ cidr: '0.0.0.0/0', source: 's' }, { cidr: '::/0', source: 's' }], false);
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.255.0.1']) {
      expect(wide.lookup(a)).toMatchObject({ trusted: false, reason: 'loopback_not_allowed' });
      expect(new TrustedSet([], true).lookup(a)).toMatchObject({ trusted: true, sources: ['loopback'] });
    }
  });

  test('unspecified and malformed peers are never trusted', () => {
    const wide = new TrustedSet([{ cidr: '0.0.0.0/0', source: 's' }, { cidr: '::/0', source: 's' }], true);
    for (const a of ['0.0.0.0', '::', '::ffff:0.0.0.0']) expect(wide.lookup(a)).toMatchObject({ trusted: false, reason: 'unspecified' });
    for (const a of ['', 'localhost', '010.0.0.1', '10.0.0.1:80']) expect(wide.lookup(a)).toMatchObject({ trusted: false, reason: 'malformed' });
  });

  test('thousands of ranges stay a correct lookup', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => ({ cidr: `10.${i >> 8}.${i & 255}.0/25`, source: `s${i % 3}` }));
    const big = new TrustedSet(entries, false);
    expect(big.size).toBe(5000);
    for (let i = 0; i < 5000; i += 97) {
      expect(big.lookup(`10.${i >> 8}.${i & 255}.127`)).toMatchObject({ trusted: true, sources: [`s${i % 3}`] });
      expect(big.lookup(`10.${i >> 8}.${i & 255}.128`).trusted).toBe(false);
    }
  });
});

describe('TrustRegistry', () => {
  test('each source replaces its own entries and the set is swapped whole', () => {
    const registry = new TrustRegistry();
    const seen: TrustedSet[] = [];
    registry.onChange((s) => seen.push(s));
    registry.setSource('static', { synced: true, cidrs: ['10.0.0.0/8'] });
    registry.expectSource('pods');
    expect(registry.unsyncedSources()).toEqual(['pods']);
    registry.setSource('pods', { synced: true, cidrs: ['192.0.2.0/24'] });
    const before = registry.current();
    registry.setSource('pods', { synced: true, cidrs: ['198.51.100.0/24'] });
    expect(before.lookup('192.0.2.1').trusted).toBe(true);
    expect(registry.current().lookup('192.0.2.1').trusted).toBe(false);
    expect(registry.current().lookup('198.51.100.1')).toMatchObject({ trusted: true, sources: ['pods'] });
    registry.removeSource('static');
    expect(registry.current().lookup('10.0.0.1').trusted).toBe(false);
    expect(registry.unsyncedSources()).toEqual([]);
    expect(seen.at(-1)).toBe(registry.current());
  });
});
