// The admin listener: liveness, readiness (keys, upstream), and metrics an operator can
// scrape: checked by the real promtool (lint included) after real traffic.
import { spawnSync } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type WebSocket from 'ws';
import { metricNames, sample, scrape } from '../support/metrics.js';
import { startSidecar, TEST_KEY, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { echo, openWebSocket } from '../support/websocket.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };

let upstream: RecordingUpstream;
let sc: TestSidecar;
const sockets: WebSocket[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url, { identity: { allowUsers: ['alice@example.com'] } }, { configFile: true });
});
afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await sc.stop();
  await upstream.close();
});

async function readyz(base: string): Promise<{ status: number; body: { ready: boolean; problems: string[] } }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; problems: string[] } };
}

function promtool(exposition: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw new Error(`promtool could not run (the Debian prometheus package provides it): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('/healthz answers while the process is alive; unknown admin paths are JSON 404s', async () => {
  const res = await fetch(`${sc.adminUrl}/healthz`);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ status: 'ok' });
  const missing = await fetch(`${sc.adminUrl}/anything`);
  expect(missing.status).toBe(404);
  expect(await missing.text()).toBe('{"error":"not_found"}');
  expect(missing.headers.get('x-powered-by')).toBeNull();
});

test('/readyz: ready; not ready without keys; ready again when the key returns', async () => {
  expect(await readyz(sc.adminUrl)).toEqual({ status: 200, body: { ready: true, problems: [] } });
  unlinkSync(join(sc.keysDir, 'k1'));
  const without = await waitFor(async () => {
    const r = await readyz(sc.adminUrl);
    return r.status === 503 && r;
  }, 'not ready without keys');
  expect(without.body).toEqual({ ready: false, problems: ['no assertion key'] });
  expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_ready')).toBe(0);
  writeFileSync(join(sc.keysDir, 'k1'), TEST_KEY);
  await waitFor(async () => (await readyz(sc.adminUrl)).status === 200, 'ready with the key back');
  expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_ready')).toBe(1);
});

test('/readyz: not ready while the upstream refuses connections', async () => {
  const gateway = await startRecordingUpstream();
  const other = await startSidecar(gateway.url);
  try {
    expect((await readyz(other.adminUrl)).status).toBe(200);
    await gateway.close();
    expect(await readyz(other.adminUrl)).toEqual({ status: 503, body: { ready: false, problems: ['upstream not accepting connections'] } });
    // The admin port is never proxied: it answers on its own even with the gateway gone.
    expect((await fetch(`${other.adminUrl}/healthz`)).status).toBe(200);
  } finally {
    await other.stop();
  }
});

test("/metrics after real traffic passes promtool check metrics (lint included), the sidecar's names prefixed, the process's standard", async () => {
  // Traffic that touches the families with labels: allowed, refused (identity and policy),
  // a stripped header, a WebSocket, a rejected config reload.
  await (await fetch(`${sc.url}/a`, { headers: { ...ALICE, 'x-forwarded-user': 'mallory' } })).text();
  await (await fetch(`${sc.url}/b`)).text();
  await (await fetch(`${sc.url}/c`, { headers: { 'x-auth-request-email': 'bob@example.com' } })).text();
  const ws = await openWebSocket(`${sc.url.replace('http', 'ws')}/ws`, ALICE);
  sockets.push(ws);
  await echo(ws, 'ping');
  sc.writeConfig('listen: { port: -1 }\n');
  await waitFor(() => sc.logs.some((l) => l.msg === 'config reload rejected; the previous config stays in force'), 'rejected reload');
  const text = await scrape(sc.adminUrl);

  const checked = promtool(text);
  expect(checked.output).toBe('');
  expect(checked.status).toBe(0);

  const names = metricNames(text);
  expect(names.length).toBeGreaterThan(20);
  // The sidecar's own under its prefix; the process and Node.js ones under their standard
  // names, where generic dashboards look for them.
  for (const name of names) expect(name).toMatch(/^(trusted_proxy_|process_|nodejs_)/);
  expect(names).toEqual(
    expect.arrayContaining([
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]),
  );

  // What the issue lists, with the labels it promises.
  const families: Record<string, string> = {
    trusted_proxy_decisions_total: 'counter',
    trusted_proxy_decision_duration_seconds: 'histogram',
    trusted_proxy_headers_stripped_total: 'counter',
    trusted_proxy_assertions_signed_total: 'counter',
    trusted_proxy_upstream_responses_total: 'counter',
    trusted_proxy_upstream_errors_total: 'counter',
    trusted_proxy_upstream_duration_seconds: 'histogram',
    trusted_proxy_websockets_open: 'gauge',
    trusted_proxy_websockets_total: 'counter',
    trusted_proxy_config_reloads_total: 'counter',
    trusted_proxy_trusted_set_size: 'gauge',
    trusted_proxy_build_info: 'gauge',
  };
  for (const [name, type] of Object.entries(families)) expect(text).toContain(`# TYPE ${name} ${type}\n`);
  expect(sample(text, 'trusted_proxy_decisions_total', { mode: 'inline', result: 'allowed', reason: 'allowed' })).toBe(2);
  expect(sample(text, 'trusted_proxy_decisions_total', { result: 'refused', reason: 'identity_missing' })).toBe(1);
  expect(sample(text, 'trusted_proxy_decisions_total', { result: 'refused', reason: 'user_not_allowed' })).toBe(1);
  expect(sample(text, 'trusted_proxy_decision_duration_seconds_count', { mode: 'inline' })).toBe(4);
  expect(sample(text, 'trusted_proxy_headers_stripped_total', { header: 'x-forwarded-user' })).toBe(1);
  expect(sample(text, 'trusted_proxy_assertions_signed_total', { kid: 'k1' })).toBeGreaterThanOrEqual(2);
  expect(sample(text, 'trusted_proxy_upstream_responses_total', { class: '2xx' })).toBeGreaterThanOrEqual(1);
  expect(sample(text, 'trusted_proxy_upstream_responses_total', { class: '101' })).toBe(1);
  expect(sample(text, 'trusted_proxy_upstream_duration_seconds_count')).toBeGreaterThanOrEqual(1);
  expect(sample(text, 'trusted_proxy_websockets_open')).toBe(1);
  expect(sample(text, 'trusted_proxy_websockets_total')).toBe(1);
  expect(sample(text, 'trusted_proxy_config_reloads_total', { result: 'rejected' })).toBe(1);
  expect(sample(text, 'trusted_proxy_trusted_set_size', { source: 'static' })).toBe(sc.config.trust.cidrs.length);
  expect(text).toMatch(/^trusted_proxy_build_info\{version="[^"]+",node_version="v\d+\.\d+\.\d+"\} 1$/m);
});

test('promtool does catch a bad exposition (so the check above can fail)', () => {
  const bad = '# HELP trusted_proxy_things_total Things.\n# TYPE trusted_proxy_things_total gauge\ntrusted_proxy_things_total 1\n';
  expect(promtool(bad).status).not.toBe(0);
});
