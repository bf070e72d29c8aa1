// A Prometheus histogram for the hot path, kept in plain arrays: one observation is a search
// of the bounds and three additions. prom-client's Histogram checks and hashes the labels and
// turns the bound into a property name on every observation, about 0.25 µs each, and every
// allowed request observes two (docs/decisions/0003-plain-array-histogram.md). The registry reads this one through
// the contract it reads prom-client's own metrics through (name, help, type, get()), and
// test/unit/metrics/histogram.test.ts holds its exposition to prom-client's Histogram's.
import type { Histogram as PromHistogram } from 'prom-client';
import type { Registry } from './prom-client.js';

export interface HistogramOptions {
  readonly name: string;
  readonly help: string;
  /** Upper bounds, ascending; the +Inf bucket is implied. */
  readonly buckets: readonly number[];
  /** At most one label: the hot path holds a series per value (perKey). */
  readonly labelName?: string;
  readonly registers: readonly Registry[];
}

/** One line of the exposition, as prom-client's metrics hand them to the registry. */
interface Sample {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

export class PlainHistogram {
  readonly type = 'histogram';
  readonly name: string;
  readonly help: string;
  private readonly bounds: readonly number[];
  private readonly labelName: string | undefined;
  private readonly series = new Map<string, HistogramSeries>();

  constructor(options: HistogramOptions) {
    this.name = options.name;
    this.help = options.help;
    this.bounds = options.buckets;
    this.labelName = options.labelName;
    // As prom-client's: without a label, the one series is shown, zero, before any observation.
    if (this.labelName === undefined) this.labels('');
    // The registry reads any object with prom-client's metric contract; its types name only
    // prom-client's own classes.
    for (const registry of options.registers) registry.registerMetric(this as unknown as PromHistogram);
  }

  /** The series of one label value, made on first use. */
  labels(value: string): HistogramSeries {
    let series = this.series.get(value);
    if (series === undefined) this.series.set(value, (series = new HistogramSeries(this.bounds)));
    return series;
  }

  /** For a histogram without a label. */
  observe(value: number): void {
    this.labels('').observe(value);
  }

  /**
   * Every series back to zero, in place, so that a series the hot path holds goes on counting
   * (prom-client's Histogram drops its series instead, and shows a labelled one again only
   * once observed).
   */
  reset(): void {
    for (const series of this.series.values()) series.reset();
  }

  /** Every series as prom-client's Histogram gives it: its buckets (cumulative), then +Inf, sum and count. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    for (const [value, series] of this.series) {
      const labels = this.labelName === undefined ? {} : { [this.labelName]: value };
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += series.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
      });
      values.push(
        { metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: series.count },
        { metricName: `${this.name}_sum`, labels, value: series.sum },
        { metricName: `${this.name}_count`, labels, value: series.count },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  observe(value: number): void {
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}
