// Batched counts: the hot path's increments reach prom-client whenever the registry is read,
// once each, beside increments made on prom-client directly.
import { createMetrics } from '../../src/metrics/metrics.js';

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
