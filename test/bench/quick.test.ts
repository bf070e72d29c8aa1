// `make bench` in quick mode on a subset of its paths: they start, carry wrk's requests and
// WebSockets to the upstream (the runner itself fails when an answer did not come from the
// upstream, or a request through the sidecar arrived unsigned), and the report and chart are
// written. No figure is judged here: performance is the benchmark's business, not a test's.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);
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

  const report = readFileSync('.run/bench-quick/performance.md', 'utf8');
  for (const section of [
    '## Targets',
    '## HTTP at saturation',
    '## Latency at a fixed 2000 requests/s',
    '## Micro-benchmarks',
    '## Kubernetes discovery at scale',
  ])
    expect(report).toContain(section);
  // The idle RSS beside its floor: Node with the sidecar's dependencies, bundled as it is.
  expect(report).toMatch(
    /\| Idle RSS \(median\) \| ≤ 60 MB \| \d+\.\d MB \| .* \| Node with the built-ins and dependencies the sidecar loads, each used once, none of its own code: \d+\.\d MB \(Node alone \d+\.\d\); of these, pages of the Node executable and its libraries \(file-backed\): \d+\.\d MB of the sidecar's, \d+\.\d of the floor's \|/,
  );
  expect(report).toMatch(/\| The limits' bookkeeping per inline request, as a share of the sidecar's CPU per request \| ≤ 3 % \| \d+\.\d %/);
  expect(report).toMatch(
    /\| Inline throughput vs bare forwarder \(median of 2 rounds\) \| ≥ 0\.90× \| \d+\.\d\d× .*\| at most \d\.\d\d× with nothing added but the required work/,
  );
  // The Go proxies a user would pick instead, each with a valid credential (the runner fails
  // if a request of theirs did not reach the upstream).
  for (const peer of ['oauth2-proxy with a valid session', 'kube-rbac-proxy with a valid token']) {
    expect(report).toMatch(new RegExp(`\\| Inline throughput vs ${peer} \\(median of 2 rounds\\) \\| ≥ 1\\.0× \\| \\d+\\.\\d\\d× `));
    expect(report).toMatch(new RegExp(`\\| Sidecar CPU per request vs ${peer} \\| ≤ 1\\.0× \\| \\d+\\.\\d\\d× `));
  }
  expect(report).toMatch(/\| Sidecar CPU per request vs nginx proxy_pass .*\| the cheapest Node forwarder, checking nothing: \d+\.\d\d× /);
  expect(report).toMatch(/\| Added p99 latency over direct .*\| the least any Node forwarder adds, checking nothing: \d+\.\d{3} ms .*nginx proxy_pass adds/);
  const chart = '.run/bench-quick/performance.png';
  expect(existsSync(chart) && statSync(chart).size).toBeGreaterThan(10_000);
  // The CPU profile: busy samples, the sidecar's own source files named in the call tree, and its flame graph.
  expect(results.profile.samples).toBeGreaterThan(100);
  expect(JSON.stringify(results.profile.tree)).toContain('src/decision/decide.ts');
  expect(report).toMatch(/## Where the inline request's CPU goes[\s\S]*\| function \| share \| µs per request \|/);
  // The decision's cost at saturation is read from the call tree by frame name: a name that
  // no longer matches would read as nothing.
  const atSaturation =
    /\| What the checks, signing and metrics add .*\| -?\d+ % \(median of 3 rounds, each alone on a core: .*\| `decide\(\)` and `upstreamHeaders\(\)` alone: (\d+\.\d) µs at saturation .*hot in a loop \|/.exec(
      report,
    );
  expect(Number(atSaturation?.[1])).toBeGreaterThan(0);
  expect(Number(/The decision, `decide\(\)` and `upstreamHeaders\(\)` with all they call, is (\d+\.\d) % of the samples/.exec(report)?.[1])).toBeGreaterThan(0);
  const flame = '.run/bench-quick/performance-flame.png';
  expect(existsSync(flame) && statSync(flame).size).toBeGreaterThan(10_000);
  // The allocation profile: sampled while requests ran, the sidecar's own allocations named.
  expect(results.allocations.requests).toBeGreaterThan(1000);
  expect(results.allocations.bytesPerRequest).toBeGreaterThan(1024);
  expect(results.allocations.top.some((t) => t.name.includes('src/'))).toBe(true);
  expect(report).toMatch(/## Where the inline request's allocations go[\s\S]*KiB allocated per request/);
}, 360_000);
