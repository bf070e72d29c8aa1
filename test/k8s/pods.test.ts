// Pods selected by namespace and label: trusted while Running and not terminating.
import { scrape, sample } from '../support/metrics.js';
import { waitFor } from '../support/wait.js';
import { startHarness, type Harness } from './harness.js';
import { pod } from './objects.js';

const SOURCE = 'pods:traefik/app.kubernetes.io/name=traefik';
let h: Harness;

beforeEach(async () => {
  h = await startHarness(
    { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] },
    {
      seed: (api) => {
        // Five matching pods: the list takes three pages at the harness's page size of 2.
        for (let i = 1; i <= 5; i++) api.upsert('pods', pod(`traefik-${i}`, [`10.0.0.${i}`]));
        api.upsert('pods', pod('other-app', ['10.0.9.1'], { labels: { app: 'other' } }));
        api.upsert('pods', pod('traefik-elsewhere', ['10.0.9.2'], { namespace: 'default' }));
      },
    },
  );
});
afterEach(async () => {
  await h.stop();
});

test('the first list (paged with limit/continue) is trusted once synced, and only the selected pods', async () => {
  await h.waitReady();
  for (let i = 1; i <= 5; i++) expect(h.trustedBy(`10.0.0.${i}`)).toEqual([SOURCE]);
  expect(h.trustedBy('10.0.9.1')).toBe(false);
  expect(h.trustedBy('10.0.9.2')).toBe(false);
  const lists = h.api.requests.filter((r) => r.resource === 'pods' && !r.watch);
  expect(lists.map((r) => [r.query.limit, Boolean(r.query.continue)])).toEqual([
    ['2', false],
    ['2', true],
    ['2', true],
  ]);
  expect(lists[0]!.query.labelSelector).toBe('app.kubernetes.io/name=traefik');
  const watch = await waitFor(() => h.api.requests.find((r) => r.resource === 'pods' && r.watch), 'the watch');
  expect(watch.query).toMatchObject({ allowWatchBookmarks: 'true', labelSelector: 'app.kubernetes.io/name=traefik' });
  expect(Number(watch.query.timeoutSeconds)).toBeGreaterThan(0);
  const metrics = await scrape(h.sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_discovery_synced', { source: SOURCE })).toBe(1);
  expect(sample(metrics, 'trusted_proxy_trusted_set_size', { source: SOURCE })).toBe(5);
});

test('a pod added Pending is not trusted until it runs with an IP; dual-stack IPs both count', async () => {
  await h.waitReady();
  h.api.upsert('pods', pod('traefik-new', [], { phase: 'Pending' }));
  h.api.upsert('pods', pod('traefik-probe', ['10.0.0.99']));
  await h.waitTrusted('10.0.0.99');
  expect(h.trustedBy('10.0.0.50')).toBe(false);
  h.api.upsert('pods', pod('traefik-new', ['10.0.0.50', 'fd00::50']));
  expect(await h.waitTrusted('10.0.0.50')).toEqual([SOURCE]);
  expect(h.trustedBy('fd00::50')).toEqual([SOURCE]);
});

test('a pod leaves the set at once when it starts terminating, and when it is deleted', async () => {
  await h.waitReady();
  h.api.upsert('pods', pod('traefik-1', ['10.0.0.1'], { terminating: true }));
  await h.waitUntrusted('10.0.0.1');
  expect(h.trustedBy('10.0.0.2')).toEqual([SOURCE]);
  h.api.remove('pods', 'traefik', 'traefik-2');
  await h.waitUntrusted('10.0.0.2');
  const update = h.logged('trusted set updated from discovery', (l) => (l.removed as string[] | undefined)?.includes('10.0.0.2') === true);
  expect(update).toMatchObject({ source: SOURCE, entries: 3 });
});

test('a pod whose labels stop matching leaves the set (the watch reports it DELETED)', async () => {
  await h.waitReady();
  h.api.upsert('pods', pod('traefik-3', ['10.0.0.3'], { labels: { 'app.kubernetes.io/name': 'not-traefik' } }));
  await h.waitUntrusted('10.0.0.3');
});

test('a request from an address no source trusts is refused, and the log line names the sources checked', async () => {
  await h.waitReady();
  const { decide } = await import('../../src/decision/decide.js');
  const decision = decide(
    { mode: 'inline', peer: '10.0.0.77', tls: false, method: 'GET', target: '/', rawHeaders: ['Host', 'x', 'X-Auth-Request-Email', 'a@example.com'] },
    h.sc.sidecar.runtime.context(),
  );
  expect(decision).toMatchObject({ ok: false, reason: 'untrusted_source' });
  expect((decision as { detail?: string }).detail).toBe(`not_in_trusted_set: no match in static (0 entries), ${SOURCE} (5 entries)`);
});
