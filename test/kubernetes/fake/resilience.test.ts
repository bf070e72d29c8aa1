// The watch survives what API servers and networks do: connections cut mid-stream,
// expired resource versions (410 Gone), 500/429 answers, stalls, bookmarks.
import { sample, scrape } from '../../support/metrics.js';
import { waitFor } from '../../../harness/wait.js';
import { startHarness, type Harness } from './harness.js';
import { pod } from './objects.js';

const SOURCE = 'pods:traefik/app.kubernetes.io/name=traefik';
let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const seed = (api: Harness['api']) => {
  for (let i = 1; i <= 3; i++) api.upsert('pods', pod(`traefik-${i}`, [`10.0.0.${i}`]));
};
const start = (timing = {}) => startHarness({ pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] }, { seed, timing });
const lists = () => h!.api.requests.filter((r) => r.resource === 'pods' && !r.watch && !r.query.continue).length;
const watches = () => h!.api.requests.filter((r) => r.resource === 'pods' && r.watch);
const metric = async (name: string, labels: Record<string, string>) => sample(await scrape(h!.sc.adminUrl), name, { source: SOURCE, ...labels });

test('a watch cut mid-stream resumes from the last resourceVersion (no relist) and replays what it missed', async () => {
  h = await start();
  await h.waitReady();
  await waitFor(() => h!.api.openWatches() === 1, 'the watch');
  const seen = h.api.resourceVersion();
  h.api.dropWatches();
  // Changes while the watch is down reach the sidecar when it resumes.
  h.api.remove('pods', 'traefik', 'traefik-1');
  h.api.upsert('pods', pod('traefik-4', ['10.0.0.4']));
  await h.waitUntrusted('10.0.0.1');
  await h.waitTrusted('10.0.0.4');
  expect(lists()).toBe(1);
  expect(watches().at(-1)!.query.resourceVersion).toBe(String(seen));
  expect(await metric('trusted_proxy_discovery_watch_restarts_total', { reason: 'error' })).toBeGreaterThanOrEqual(1);
  expect(await metric('trusted_proxy_discovery_errors_total', { kind: 'network' })).toBeGreaterThanOrEqual(1);
});

test('a bookmark moves the resume point forward', async () => {
  h = await start();
  await h.waitReady();
  await waitFor(() => h!.api.openWatches() === 1, 'the watch');
  // Changes outside the selection advance the resourceVersion without an event to us.
  h.api.upsert('pods', pod('unrelated', ['10.7.0.1'], { namespace: 'default' }));
  // The last event ages, so that the bookmark's arrival shows as the age dropping.
  await waitFor(async () => (await metric('trusted_proxy_discovery_last_event_age_seconds', {})) >= 0.4, 'the last event aged');
  h.api.bookmark();
  const bookmarked = String(h.api.resourceVersion());
  await waitFor(async () => (await metric('trusted_proxy_discovery_last_event_age_seconds', {})) < 0.3, 'the bookmark read');
  h.api.dropWatches();
  await waitFor(() => watches().length >= 2 && h!.api.openWatches() === 1, 'the watch reopened');
  expect(watches().at(-1)!.query.resourceVersion).toBe(bookmarked);
});

test('410 Gone on the watch (an ERROR event for a compacted resourceVersion) relists and reconciles', async () => {
  h = await start();
  await h.waitReady();
  await waitFor(() => h!.api.openWatches() === 1, 'the watch');
  // Cut the watch and compact history before it resumes: the change below is never
  // streamed, only a fresh list can show that traefik-2 is gone.
  h.api.dropWatches();
  h.api.remove('pods', 'traefik', 'traefik-2');
  h.api.expire();
  await h.waitUntrusted('10.0.0.2');
  expect(h.trustedBy('10.0.0.1')).toEqual([SOURCE]);
  expect(lists()).toBe(2);
  expect(await metric('trusted_proxy_discovery_watch_restarts_total', { reason: 'expired' })).toBeGreaterThanOrEqual(1);
});

test('410 Gone as the HTTP status of a watch request relists too', async () => {
  h = await start();
  await h.waitReady();
  await waitFor(() => h!.api.openWatches() === 1, 'the watch');
  h.api.failNext(410, 1, 'watch');
  h.api.dropWatches();
  await waitFor(() => lists() === 2, 'a relist');
  await waitFor(() => h!.api.openWatches() === 1, 'the watch reopened');
  expect(h.trustedBy('10.0.0.3')).toEqual([SOURCE]);
});

test('500 and 429 answers to the list are retried with backoff until the list succeeds', async () => {
  h = await startHarness(
    { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] },
    {
      seed: (api) => {
        seed(api);
        api.failNext(500, 2, 'list');
        api.failNext(429, 1, 'list');
      },
    },
  );
  await h.waitReady();
  expect(h.trustedBy('10.0.0.1')).toEqual([SOURCE]);
  expect(await metric('trusted_proxy_discovery_errors_total', { kind: 'server_error' })).toBe(2);
  expect(await metric('trusted_proxy_discovery_errors_total', { kind: 'throttled' })).toBe(1);
  expect(await metric('trusted_proxy_discovery_watch_restarts_total', { reason: 'error' })).toBe(3);
  const warned = h.sc.logs.filter((l) => l.msg === 'discovery source cannot reach the Kubernetes API; retrying');
  expect(warned.map((l) => l.kind)).toEqual(['server_error', 'server_error', 'throttled']);
});

test('a watch that is never answered is reopened after the head timeout, long before the idle one', async () => {
  h = await start({ watchHeadTimeoutMs: 500, watchIdleTimeoutMs: 60_000 });
  await h.waitReady();
  await waitFor(() => h!.api.openWatches() === 1, 'the watch');
  const before = watches().length;
  // The watch ends cleanly; the server holds its reopening (and every later request)
  // without an answer, as a connection lost unnoticed before the head would.
  h.api.stall();
  h.api.endWatches();
  h.api.remove('pods', 'traefik', 'traefik-3');
  await waitFor(async () => (await metric('trusted_proxy_discovery_watch_restarts_total', { reason: 'idle' })) >= 1, 'a restart for want of an answer', 5000);
  await waitFor(() => watches().length >= before + 2, 'the unanswered watch opened again');
  expect(h.trustedBy('10.0.0.3')).toEqual([SOURCE]);
  h.api.unstall();
  await h.waitUntrusted('10.0.0.3');
});

test('a stalled API server: the quiet watch is reopened after the idle timeout and catches up once it answers', async () => {
  h = await start({ watchIdleTimeoutMs: 600 });
  await h.waitReady();
  await waitFor(() => h!.api.openWatches() === 1, 'the watch');
  h.api.stall();
  h.api.remove('pods', 'traefik', 'traefik-3');
  await waitFor(async () => (await metric('trusted_proxy_discovery_watch_restarts_total', { reason: 'idle' })) >= 1, 'an idle restart', 5000);
  expect(h.trustedBy('10.0.0.3')).toEqual([SOURCE]);
  h.api.unstall();
  await h.waitUntrusted('10.0.0.3');
});
