// The hot path's histogram (src/metrics/histogram.ts) against prom-client's own: the same
// observations give the same exposition, line for line, with and without a label.
import fc from 'fast-check';
import { Histogram } from 'prom-client';
import { PlainHistogram } from '../../../src/metrics/histogram.js';
import { Registry } from '../../../src/metrics/prom-client.js';

const bounds = fc.uniqueArray(fc.double({ min: 1e-6, max: 100, noNaN: true }), { minLength: 1, maxLength: 16 }).map((xs) => xs.sort((a, b) => a - b));
// Values at, around and between the bounds, and beyond the last.
const value = fc.oneof(fc.double({ min: 0, max: 200, noNaN: true }), fc.constantFrom(0, 1e-6, 0.001, 0.005, 1, 10, 100));
const observations = fc.array(fc.tuple(fc.constantFrom('inline', 'forward-auth'), value, fc.boolean()), { maxLength: 60 });

/** Each observation's value, or one of the bounds themselves (which bucket takes a value equal to its bound). */
function valuesOf(buckets: number[], seen: [string, number, boolean][]): [string, number][] {
  return seen.map(([mode, v, onBound], i) => [mode, onBound ? buckets[i % buckets.length]! : v]);
}

/** The registry's JSON, less prom-client's exemplar slots (none is ever set here). */
async function json(registry: Registry) {
  return (await registry.getMetricsAsJSON()).map((metric) => ({
    ...metric,
    values: metric.values.map(({ labels, value, ...rest }) => ({ labels, value, metricName: (rest as { metricName?: string }).metricName })),
  }));
}

function pair(buckets: number[], labelled: boolean) {
  const ours = new Registry();
  const theirs = new Registry();
  const options = { name: 'sample_seconds', help: 'A sample.', buckets };
  const plain = new PlainHistogram({ ...options, registers: [ours], ...(labelled && { labelName: 'mode' }) });
  const prom = new Histogram({ ...options, registers: [theirs], ...(labelled && { labelNames: ['mode'] }) });
  return { ours, theirs, plain, prom };
}

test('without a label, the exposition is prom-client’s for the same observations', async () => {
  await fc.assert(
    fc.asyncProperty(bounds, observations, async (buckets, seen) => {
      const { ours, theirs, plain, prom } = pair(buckets, false);
      expect(await ours.metrics()).toBe(await theirs.metrics());
      for (const [, v] of valuesOf(buckets, seen)) {
        plain.observe(v);
        prom.observe(v);
      }
      expect(await ours.metrics()).toBe(await theirs.metrics());
      expect(await json(ours)).toEqual(await json(theirs));
    }),
    { numRuns: 200 },
  );
});

test('with a label, each value’s series is prom-client’s, in the order first observed', async () => {
  await fc.assert(
    fc.asyncProperty(bounds, observations, async (buckets, seen) => {
      const { ours, theirs, plain, prom } = pair(buckets, true);
      for (const [mode, v] of valuesOf(buckets, seen)) {
        plain.labels(mode).observe(v);
        prom.labels(mode).observe(v);
      }
      expect(await ours.metrics()).toBe(await theirs.metrics());
      expect(await json(ours)).toEqual(await json(theirs));
    }),
    { numRuns: 200 },
  );
});

test('the exposition is a histogram Prometheus reads: cumulative buckets, +Inf, sum and count', async () => {
  const { ours, plain } = pair([0.1, 1], true);
  for (const v of [0.05, 0.1, 0.5, 3]) plain.labels('inline').observe(v);
  expect(await ours.metrics()).toBe(
    [
      '# HELP sample_seconds A sample.',
      '# TYPE sample_seconds histogram',
      'sample_seconds_bucket{le="0.1",mode="inline"} 2',
      'sample_seconds_bucket{le="1",mode="inline"} 3',
      'sample_seconds_bucket{le="+Inf",mode="inline"} 4',
      'sample_seconds_sum{mode="inline"} 3.65',
      'sample_seconds_count{mode="inline"} 4',
      '',
    ].join('\n'),
  );
});

test('a reset zeroes every series in place: a series held before it counts on', async () => {
  const { ours, plain } = pair([0.1, 1], true);
  const held = plain.labels('inline');
  held.observe(0.5);
  ours.resetMetrics();
  expect(await ours.metrics()).toMatch(/^sample_seconds_count\{mode="inline"\} 0$/m);
  held.observe(2);
  expect(await ours.metrics()).toMatch(/^sample_seconds_bucket\{le="1",mode="inline"\} 0$/m);
  expect(await ours.metrics()).toMatch(/^sample_seconds_count\{mode="inline"\} 1$/m);
  expect(await ours.metrics()).toMatch(/^sample_seconds_sum\{mode="inline"\} 2$/m);
});
