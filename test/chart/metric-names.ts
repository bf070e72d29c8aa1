// Metric names the sidecar exports, read from its sources (every `${PREFIX}name` with the
// file's `const PREFIX = '…'`), so dashboards and alerts cannot name a metric that is not there.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMetrics } from '../../src/metrics/metrics.js';
import { ROOT } from './k8s.js';

/** Metrics from outside the sidecar that the alerts may use. */
const EXTERNAL = ['kube_secret_created'];

export function sidecarMetricNames(): Set<string> {
  const names = new Set<string>(EXTERNAL);
  const files = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  for (const f of files) {
    const text = readFileSync(join(ROOT, 'src', f), 'utf8');
    const prefix = /const PREFIX = '([a-z_:]+)'/.exec(text)?.[1];
    if (!prefix) continue;
    for (const m of text.matchAll(/\$\{PREFIX\}([a-z_:]+)`/g)) {
      const name = `${prefix}${m[1]}`;
      names.add(name);
      // Histograms are queried by their series.
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    }
  }
  // And the process and Node.js metrics, under their standard names.
  for (const { name } of createMetrics('test').registry.getMetricsAsArray()) names.add(name);
  return names;
}

export function metricNamesIn(exprs: string): string[] {
  return [...new Set([...exprs.matchAll(/\b(trusted_proxy_[a-z_:]+|kube_[a-z_]+|process_[a-z_]+|nodejs_[a-z_]+)\b/g)].map((m) => m[1]!))];
}
