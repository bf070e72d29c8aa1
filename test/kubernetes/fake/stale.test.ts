// The API server down for longer than staleAfterSeconds: onStale keep holds the last set,
// deny empties it; either way readiness, a log line and metrics say so, and both recover.
import { execFileSync } from 'node:child_process';
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

const start = (onStale: 'keep' | 'deny') =>
  startHarness(
    { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }], onStale, staleAfterSeconds: 1 },
    { seed: (api) => [1, 2].forEach((i) => api.upsert('pods', pod(`traefik-${i}`, [`10.0.0.${i}`]))) },
  );
const staleMetric = async () => sample(await scrape(h!.sc.adminUrl), 'trusted_proxy_discovery_stale', { source: SOURCE });
const staleProblem = async () => (await h!.readiness()).problems.find((p) => p.startsWith(`${SOURCE}: stale`));

test('onStale keep: the last known set stays trusted while readiness, log and metrics report the outage', async () => {
  h = await start('keep');
  await h.waitReady();
  await h.api.down();
  const problem = await waitFor(staleProblem, 'a stale readiness problem', 5000);
  expect(problem).toContain('onStale=keep: last known set kept');
  expect((await h.readiness()).status).toBe(503);
  expect(h.trustedBy('10.0.0.1')).toEqual([SOURCE]);
  expect(await staleMetric()).toBe(1);
  expect(h.logged('discovery source is stale: the Kubernetes API is unreachable; keeping the last known trusted set')).toMatchObject({
    level: 50,
    source: SOURCE,
    onStale: 'keep',
    entries: 2,
  });
  // The exposition stays valid for Prometheus while stale.
  const text = await scrape(h.sc.adminUrl);
  execFileSync('promtool', ['check', 'metrics'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] });
  // A change made during the outage arrives when the watch resumes.
  h.api.remove('pods', 'traefik', 'traefik-2');
  await h.api.up();
  await h.waitReady();
  await h.waitUntrusted('10.0.0.2');
  expect(h.trustedBy('10.0.0.1')).toEqual([SOURCE]);
  expect(await staleMetric()).toBe(0);
  expect(h.logged('discovery source reached the Kubernetes API again; no longer stale')).toBeDefined();
});

test('onStale deny: the source is emptied after staleAfterSeconds and refilled from a fresh list', async () => {
  h = await start('deny');
  await h.waitReady();
  const listsBefore = h.api.requests.filter((r) => !r.watch).length;
  await h.api.down();
  await h.waitUntrusted('10.0.0.1', 'the set emptied');
  expect(await staleProblem()).toContain('onStale=deny: trusted set emptied');
  expect(await staleMetric()).toBe(1);
  expect(h.sc.sidecar.runtime.snapshot.trusted.sizeBySource.get(SOURCE)).toBe(0);
  expect(h.logged('discovery source is stale: the Kubernetes API is unreachable; its trusted entries are removed until a fresh list')).toMatchObject({
    level: 50,
    onStale: 'deny',
  });
  await h.api.up();
  await h.waitTrusted('10.0.0.1');
  await h.waitReady();
  expect(h.api.requests.filter((r) => !r.watch).length).toBeGreaterThan(listsBefore);
  expect(await staleMetric()).toBe(0);
});
