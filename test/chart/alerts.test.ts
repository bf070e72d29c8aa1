// The chart's alerts evaluated by promtool over series a scrape would give: they select the
// release's pods without a `service` label (a PodMonitor gives none), the staleness alert
// fires for a discovery source that never synced, and a target that disappears is alerted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CI_VALUES, one, renderChart } from './k8s.js';

const POD = { namespace: 'openclaw', pod: 'claw-trusted-proxy-sidecar-5d9c7b6f4-x2x7q' };
const series = (name: string, labels: Record<string, string>, values: string) => ({
  series: `${name}{${Object.entries({ ...POD, ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`,
  values,
});

let dir: string;
let rules: { alert: string; annotations: Record<string, string>; labels: Record<string, string> }[];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tps-alerts-'));
  const rule = one(renderChart([join(CI_VALUES, 'all-optional-values.yaml')]).objects, 'PrometheusRule') as any;
  rules = rule.spec.groups[0].rules;
  writeFileSync(join(dir, 'rules.yaml'), stringify({ groups: rule.spec.groups }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What an alert's annotations read once its labels are filled in. */
function annotations(alert: string, labels: Record<string, string>): Record<string, string> {
  const found = rules.find((r) => r.alert === alert)!;
  return Object.fromEntries(
    Object.entries(found.annotations).map(([k, v]) => [k, v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_m, l: string) => labels[l] ?? '')]),
  );
}

function promtoolTest(tests: object[]): { status: number | null; output: string } {
  const file = join(dir, 'test.yaml');
  writeFileSync(file, stringify({ rule_files: [join(dir, 'rules.yaml')], evaluation_interval: '1m', tests }));
  const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

test('a discovery source that never synced is stale once the process is older than the threshold; one that syncs is not', () => {
  const never = { source: 'pods:traefik/app.kubernetes.io/name=traefik' };
  const healthy = { source: 'endpointslices:traefik/traefik' };
  const stale = { alertname: 'TrustedProxyDiscoveryStale', severity: 'warning', ...POD, ...never };
  const r = promtoolTest([
    {
      interval: '1m',
      input_series: [
        series('process_start_time_seconds', {}, '0x40'),
        series('trusted_proxy_discovery_synced', never, '0x40'),
        series('trusted_proxy_discovery_synced', healthy, '1x40'),
        // Its last contact with the API, every minute: the evaluation time itself.
        series('trusted_proxy_discovery_last_sync_timestamp_seconds', healthy, '0+60x40'),
        series('trusted_proxy_build_info', { version: '0.1.0', node_version: 'v24' }, '1x40'),
      ],
      alert_rule_test: [
        { eval_time: '9m', alertname: 'TrustedProxyDiscoveryStale', exp_alerts: [] },
        {
          eval_time: '20m',
          alertname: 'TrustedProxyDiscoveryStale',
          exp_alerts: [{ exp_labels: { severity: 'warning', ...POD, ...never }, exp_annotations: annotations('TrustedProxyDiscoveryStale', stale) }],
        },
      ],
    },
  ]);
  expect(r).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
});

test('a sidecar scraped, then gone: TargetMissing fires after targetMissingFor and its for; not while it is scraped', () => {
  const r = promtoolTest([
    {
      interval: '1m',
      input_series: [series('trusted_proxy_build_info', { version: '0.1.0', node_version: 'v24' }, '1x10 _x30')],
      alert_rule_test: [
        { eval_time: '10m', alertname: 'TrustedProxyTargetMissing', exp_alerts: [] },
        // Gone after 10 m: absent for 10 m from 20 m, and 5 m of `for`.
        {
          eval_time: '26m',
          alertname: 'TrustedProxyTargetMissing',
          exp_alerts: [{ exp_labels: { severity: 'critical', namespace: POD.namespace }, exp_annotations: annotations('TrustedProxyTargetMissing', {}) }],
        },
      ],
    },
  ]);
  expect(r).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
});

test("the test above can fail: a series of another release does not count as this one's", () => {
  const other = { namespace: 'openclaw', pod: 'other-release-5d9c7b6f4-x2x7q' };
  const r = promtoolTest([
    {
      interval: '1m',
      input_series: [{ series: `trusted_proxy_build_info{namespace="${other.namespace}",pod="${other.pod}"}`, values: '1x30' }],
      alert_rule_test: [{ eval_time: '26m', alertname: 'TrustedProxyTargetMissing', exp_alerts: [] }],
    },
  ]);
  expect(r.status).toBe(1);
  expect(r.output).toContain('TrustedProxyTargetMissing');
});

test('every alert has a runbook_url whose anchor is a section of docs/metrics.md', () => {
  const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
  const anchors = new Set(
    [...doc.matchAll(/^#{2,3} (.+)$/gm)].map((m) =>
      m[1]!
        .toLowerCase()
        .replace(/[^a-z0-9 -]/g, '')
        .replace(/ /g, '-'),
    ),
  );
  expect(rules.length).toBeGreaterThan(5);
  for (const rule of rules) {
    const url = rule.annotations.runbook_url ?? '';
    expect(url).toMatch(/^https:\/\/github\.com\/trusted-proxy-sidecar\/trusted-proxy-sidecar\/blob\/main\/docs\/metrics\.md#/);
    expect([rule.alert, anchors.has(url.split('#')[1]!)]).toEqual([rule.alert, true]);
  }
});
