// Every metric the sidecar registers is documented in docs/metrics.md.
import { readFileSync } from 'node:fs';
import { REFUSALS } from '../../src/vocabulary/refusals.js';
import { createMetrics } from '../../src/metrics/metrics.js';

const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
const names = createMetrics('test')
  .registry.getMetricsAsArray()
  .map((m) => m.name)
  .filter((n) => !/^(process|nodejs)_/.test(n));

test.each(names)('docs/metrics.md documents %s', (name) => {
  expect(doc).toContain(`\`${name}\``);
});

test.each(Object.entries(REFUSALS))('docs/metrics.md lists refusal %s with status %d', (reason, status) => {
  expect(doc).toContain(`\`${reason}\` ${status}`);
});
