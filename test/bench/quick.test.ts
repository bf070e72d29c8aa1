// `make bench` in quick mode on a subset of its paths: they start, carry wrk's requests and
// WebSockets to the upstream (the runner itself fails when an answer did not come from the
// upstream, or a request through the sidecar arrived unsigned), and the report and chart are
// written. No figure is judged here: performance is the benchmark's business, not a test's.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
/** The targets this subset of paths measures (bench/targets.ts). */
const TARGETS = [
  'inline-vs-bare',
  'inline-vs-oauth2-proxy',
  'cpu-vs-oauth2-proxy',
  'inline-vs-kube-rbac-proxy',
  'cpu-vs-kube-rbac-proxy',
  'checks-added',
  'cpu-vs-nginx',
  'p99-vs-two-hop-fixed',
  'p99-vs-two-hop-saturation',
  'added-p99',
  'idle-websockets-rss',
  'echo-vs-nginx',
  'signs-per-second',
  'limits-share',
  'lookups-per-second',
  'cold-start',
  'idle-rss',
];
const PATHS = ['direct', 'forwarder-proxy-layer', 'sidecar', 'nginx', 'traefik', 'oauth2-proxy', 'kube-rbac-proxy', 'nginx-auth', 'traefik-auth'];

test('the quick benchmark measures its paths end to end and writes the report and chart', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  // `make test` compiles the benchmark into .run/bench (as `make bench` does).
  await run(process.execPath, ['.run/bench/bench/run.js', '--quick', `--only=${PATHS.join(',')},micro,kubernetes,websockets,profile,coldstart`], {
    env,
    timeout: 360_000,
  });

  const results = JSON.parse(readFileSync('.run/bench-quick.json', 'utf8')) as {
    http: { id: string; saturation: unknown[]; fixed: { rounds: unknown[] }; cpuPer10k?: number }[];
    micro: { rounds: { decisions: number; signs: number; limits: number; lookups: Record<string, number> }[] };
    kubernetes: { nodes: number; pods: number; modes: { name: string; syncSeconds: number; entries: number }[] };
    websockets: { idle: { count: number }; echo: { sidecar: { roundTrips: number }[] } };
    pinned: { pairs: { bareUs: number; sidecarUs: number }[] };
    profile: { samples: number; tree: unknown };
    allocations: { requests: number; bytesPerRequest: number; top: { name: string }[] };
    targets: { id: string; value: number; op: '≤' | '≥'; bound: number; met: boolean; limit?: { value: number; text: string } }[];
  };
  expect(results.http.map((h) => h.id)).toEqual(PATHS);
  for (const h of results.http) {
    expect(h.saturation).toHaveLength(2);
    expect(h.fixed.rounds).toHaveLength(2);
    if (h.id !== 'direct') expect(h.cpuPer10k).toBeGreaterThan(0);
  }
  // The bare forwarder and the sidecar again, each alone on a core, round by round: the
  // figures of the target for what the checks add.
  expect(results.pinned.pairs).toHaveLength(3);
  for (const pair of results.pinned.pairs) for (const us of [pair.bareUs, pair.sidecarUs]) expect(us).toBeGreaterThan(0);
  expect(results.micro.rounds).toHaveLength(3);
  for (const m of results.micro.rounds) {
    expect(m.decisions).toBeGreaterThan(0);
    expect(m.signs).toBeGreaterThan(0);
    expect(m.limits).toBeGreaterThan(0);
    expect(Object.keys(m.lookups)).toEqual(['IPv4', 'IPv6', 'mixed IPv4/IPv6']);
  }

  // Idle WebSockets were held through the sidecar (the runner fails if any of those it
  // opens, each its own user as the per-identity limit requires, is refused), and the
  // echo went through it.
  expect(results.websockets.idle.count).toBeGreaterThan(0);
  expect(results.websockets.echo.sidecar).toHaveLength(2);
  for (const round of results.websockets.echo.sidecar) expect(round.roundTrips).toBeGreaterThan(0);

  // Discovery at scale on the real API server, at the quick size: every mode synced, and
  // each trusted what the seeded cluster holds (50 ingress pods and endpoints, a CIDR and an address per node).
  expect(results.kubernetes).toMatchObject({ nodes: 300, pods: 1200 });
  expect(results.kubernetes.modes.map((m) => m.entries)).toEqual([50, 50, 300, 300]);

  // The targets, as data: every one this subset of paths measures, each judged from a finite
  // figure against its bound, and those with a limit carry its figure from the same run.
  const target = (id: string) => results.targets.find((t) => t.id === id);
  expect(results.targets.map((t) => t.id).sort()).toEqual([...TARGETS].sort());
  for (const t of results.targets) {
    expect(Number.isFinite(t.value) && Number.isFinite(t.bound)).toBe(true);
    expect(t.met).toBe(t.op === '≤' ? t.value <= t.bound : t.value >= t.bound);
    if (t.limit) expect(Number.isFinite(t.limit.value)).toBe(true);
  }
  // The idle RSS beside its floor: Node with the sidecar's dependencies, bundled as it is.
  expect(target('idle-rss')?.limit?.value).toBeGreaterThan(0);
  // At most what the bare forwarder reaches with the required work added: a share of it.
  expect(target('inline-vs-bare')?.limit?.value).toBeGreaterThan(0);
  expect(target('inline-vs-bare')?.limit?.value).toBeLessThan(1);
  // The required work's own cost, read from the CPU profile by frame name: a name that no
  // longer matches would read as nothing.
  expect(target('checks-added')?.limit?.value).toBeGreaterThan(0);
  expect(target('cpu-vs-nginx')?.limit?.value).toBeGreaterThan(0);
  expect(target('added-p99')?.limit).toBeDefined();

  const report = readFileSync('.run/bench-quick/performance.md', 'utf8');
  for (const section of [
    '## Targets',
    '## HTTP at saturation',
    '## Latency at a fixed 2000 requests/s',
    '## Micro-benchmarks',
    '## Kubernetes discovery at scale',
  ])
    expect(report).toContain(section);
  const chart = '.run/bench-quick/performance.png';
  expect(existsSync(chart) && statSync(chart).size).toBeGreaterThan(10_000);
  // The CPU profile: busy samples, the sidecar's own source files named in the call tree, and its flame graph.
  expect(results.profile.samples).toBeGreaterThan(100);
  expect(JSON.stringify(results.profile.tree)).toContain('src/decision/decide.ts');
  expect(report).toMatch(/## Where the inline request's CPU goes[\s\S]*\| function \| share \| µs per request \|/);
  expect(Number(/The decision, `decide\(\)` and `upstreamHeaders\(\)` with all they call, is (\d+\.\d) % of the samples/.exec(report)?.[1])).toBeGreaterThan(0);
  const flame = '.run/bench-quick/performance-flame.png';
  expect(existsSync(flame) && statSync(flame).size).toBeGreaterThan(10_000);
  // The allocation profile: sampled while requests ran, the sidecar's own allocations named.
  expect(results.allocations.requests).toBeGreaterThan(1000);
  expect(results.allocations.bytesPerRequest).toBeGreaterThan(1024);
  expect(results.allocations.top.some((t) => t.name.includes('src/'))).toBe(true);
  expect(report).toMatch(/## Where the inline request's allocations go[\s\S]*KiB allocated per request/);
}, 360_000);
