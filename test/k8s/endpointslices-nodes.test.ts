// EndpointSlices of a Service, node pod CIDRs and node addresses, each as its own source.
import { startHarness, type Harness } from './harness.js';
import { endpointSlice, node } from './objects.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

test('EndpointSlices: only ready, non-terminating endpoints of the named Service are trusted', async () => {
  h = await startHarness(
    { endpointSlices: [{ namespace: 'traefik', service: 'traefik' }] },
    {
      seed: (api) => {
        api.upsert('endpointslices', endpointSlice('traefik-abc', 'traefik', [{ addresses: ['10.1.0.1'] }, { addresses: ['10.1.0.2'], ready: false }]));
        api.upsert('endpointslices', endpointSlice('traefik-v6', 'traefik', [{ addresses: ['fd00:1::1'] }], { addressType: 'IPv6' }));
        api.upsert('endpointslices', endpointSlice('traefik-fqdn', 'traefik', [{ addresses: ['proxy.example.com'] }], { addressType: 'FQDN' }));
        api.upsert('endpointslices', endpointSlice('other-xyz', 'other', [{ addresses: ['10.1.9.9'] }]));
      },
    },
  );
  await h.waitReady();
  const SOURCE = 'endpointSlices:traefik/traefik';
  expect(h.trustedBy('10.1.0.1')).toEqual([SOURCE]);
  expect(h.trustedBy('fd00:1::1')).toEqual([SOURCE]);
  expect(h.trustedBy('10.1.0.2')).toBe(false);
  expect(h.trustedBy('10.1.9.9')).toBe(false);
  expect(h.api.requests.find((r) => r.resource === 'endpointslices')!.query.labelSelector).toBe('kubernetes.io/service-name=traefik');

  // The not-ready endpoint turns ready; the ready one starts terminating.
  h.api.upsert('endpointslices', endpointSlice('traefik-abc', 'traefik', [{ addresses: ['10.1.0.1'], ready: false, terminating: true }, { addresses: ['10.1.0.2'] }]));
  await h.waitTrusted('10.1.0.2');
  expect(h.trustedBy('10.1.0.1')).toBe(false);
  h.api.remove('endpointslices', 'traefik', 'traefik-v6');
  await h.waitUntrusted('fd00:1::1');
});

test('node pod CIDRs (broad mode): added and removed with the nodes, filtered by nodeSelector', async () => {
  h = await startHarness(
    { nodePodCIDRs: { enabled: true, nodeSelector: 'pool=ingress' } },
    {
      seed: (api) => {
        api.upsert('nodes', node('n1', { podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'], labels: { pool: 'ingress' } }));
        api.upsert('nodes', node('n2', { podCIDRs: ['10.244.2.0/24'], labels: { pool: 'batch' } }));
      },
    },
  );
  await h.waitReady();
  const SOURCE = 'nodePodCIDRs:pool=ingress';
  expect(h.trustedBy('10.244.1.77')).toEqual([SOURCE]);
  expect(h.trustedBy('fd00:244:1::9')).toEqual([SOURCE]);
  expect(h.trustedBy('10.244.2.77')).toBe(false);
  // A new node is given its CIDR after it registers.
  h.api.upsert('nodes', node('n3', { labels: { pool: 'ingress' } }));
  h.api.upsert('nodes', node('n3', { podCIDRs: ['10.244.3.0/24'], labels: { pool: 'ingress' } }));
  await h.waitTrusted('10.244.3.1');
  h.api.remove('nodes', undefined, 'n1');
  await h.waitUntrusted('10.244.1.77');
  expect(h.trustedBy('fd00:244:1::9')).toBe(false);
  expect(h.trustedBy('10.244.3.1')).toEqual([SOURCE]);
});

test('node addresses of the configured types (hostNetwork ingress); DNS names are never trusted', async () => {
  h = await startHarness(
    { nodeAddresses: { enabled: true, types: ['InternalIP', 'Hostname'] } },
    {
      seed: (api) => {
        api.upsert('nodes', node('n1', { addresses: [['InternalIP', '192.168.10.1'], ['ExternalIP', '203.0.113.1'], ['Hostname', 'n1']] }));
      },
    },
  );
  await h.waitReady();
  expect(h.trustedBy('192.168.10.1')).toEqual(['nodeAddresses']);
  expect(h.trustedBy('203.0.113.1')).toBe(false);
  h.api.upsert('nodes', node('n1', { addresses: [['InternalIP', '192.168.10.2']] }));
  await h.waitTrusted('192.168.10.2');
  expect(h.trustedBy('192.168.10.1')).toBe(false);
  expect(h.sc.sidecar.runtime.trust.current().sizeBySource.get('nodeAddresses')).toBe(1);
});

test('several sources together: an address trusted by two names both', async () => {
  h = await startHarness(
    { nodePodCIDRs: { enabled: true }, endpointSlices: [{ namespace: 'traefik', service: 'traefik' }] },
    {
      cidrs: ['10.9.0.0/16'],
      seed: (api) => {
        api.upsert('nodes', node('n1', { podCIDRs: ['10.244.1.0/24'] }));
        api.upsert('endpointslices', endpointSlice('traefik-abc', 'traefik', [{ addresses: ['10.244.1.5'] }]));
      },
    },
  );
  await h.waitReady();
  expect(h.trustedBy('10.244.1.5')).toEqual(['endpointSlices:traefik/traefik', 'nodePodCIDRs']);
  expect(h.trustedBy('10.244.1.6')).toEqual(['nodePodCIDRs']);
  expect(h.trustedBy('10.9.1.1')).toEqual(['static']);
});
