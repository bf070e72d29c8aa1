// Batched counts: the hot path's increments reach prom-client whenever the registry is read,
// once each, beside increments made on prom-client directly. And what a scrape reads of the
// listeners and the process, without walking every handle.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createMetrics } from '../../../src/metrics/metrics.js';
import { metricNames, sample } from '../../support/metrics.js';
import { waitFor } from '../../../harness/wait.js';

async function value(metrics: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const found = (metric?.values ?? []).find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return found?.value ?? 0;
}

test('a batched count is read as its sum, once, however often the registry is read', async () => {
  const metrics = createMetrics('test');
  const signed = metrics.batched(metrics.assertionsSigned, { kid: 'k1' });
  for (let i = 0; i < 3; i++) signed.inc();
  expect(await value(metrics, 'trusted_proxy_assertions_signed_total', { kid: 'k1' })).toBe(3);
  expect(await value(metrics, 'trusted_proxy_assertions_signed_total', { kid: 'k1' })).toBe(3);
  signed.inc();
  signed.inc();
  expect(await metrics.registry.metrics()).toMatch(/^trusted_proxy_assertions_signed_total\{kid="k1"\} 5$/m);
});

test('batched and direct increments of one counter add up, label by label', async () => {
  const metrics = createMetrics('test');
  const allowed = metrics.batched(metrics.decisions, { mode: 'inline', result: 'allowed', reason: 'allowed' });
  allowed.inc();
  metrics.decisions.inc({ mode: 'inline', result: 'allowed', reason: 'allowed' });
  metrics.decisions.inc({ mode: 'inline', result: 'refused', reason: 'untrusted_source' });
  expect(await value(metrics, 'trusted_proxy_decisions_total', { result: 'allowed' })).toBe(2);
  expect(await value(metrics, 'trusted_proxy_decisions_total', { result: 'refused' })).toBe(1);
});

describe('what a scrape reads of connections and descriptors', () => {
  const HELD = 30;
  let server: Server;
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  test("connections_open counts a listener's connections, connections_max is its maximum, process_open_fds counts every descriptor, and no default walks the handles", async () => {
    const metrics = createMetrics('test');
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    server.maxConnections = 100;
    metrics.observeConnections('data', server);
    const port = (server.address() as { port: number }).port;
    for (let i = 0; i < HELD; i++) sockets.push(connect(port, '127.0.0.1'));
    await waitFor(async () => (await new Promise<number>((resolve) => server.getConnections((_, n) => resolve(n)))) === HELD, 'the connections accepted');
    const text = await metrics.registry.metrics();
    expect(sample(text, 'trusted_proxy_connections_open', { port: 'data' })).toBe(HELD);
    expect(sample(text, 'trusted_proxy_connections_max', { port: 'data' })).toBe(100);
    // Each connection is two descriptors of this process, the client's end and the accepted
    // one (descriptors.test.ts checks the count exactly, in a quiet process).
    expect(sample(text, 'process_open_fds')).toBeGreaterThan(2 * HELD);
    expect(metricNames(text).filter((name) => /active_(handles|requests|resources)/.test(name))).toEqual([]);
    expect(metricNames(text).filter((name) => name === 'process_open_fds')).toHaveLength(1);
  });
});
