// Writes reports/performance.md (tables, ratios, targets) and performance.png (latency
// distributions, drawn as SVG and rendered by the machine's Chromium).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { ColdStart, ImportCost } from './coldstart.js';
import type { WrkResult } from './load.js';
import { NGINX } from './paths.js';
import { tempDir } from './procs.js';
import type { EchoResult } from './ws.js';
import { CHROMIUM_ARGS } from '../harness/chromium.js';

export interface HttpResult {
  id: string;
  title: string;
  /** At saturation, the round with the median rate: the percentiles reported. */
  wrk: WrkResult;
  /** At saturation, one wrk result per round. */
  saturation: WrkResult[];
  /** Over all saturation rounds. */
  cpuPer10k: number | undefined;
  rssBytes: number | undefined;
  /**
   * Latency at a fixed rate: one wrk result per round, and the proxying processes' CPU
   * seconds over all rounds (undefined for direct).
   */
  fixed?: { rate: number; rounds: WrkResult[]; cpuSeconds: number | undefined };
}

export interface IdleCost {
  count: number;
  before: IdleState;
  after: IdleState;
}

interface IdleState {
  rss: number;
  fds: number;
  heap: number;
  /** The sidecar's CPU µs per /metrics scrape (absent for the bare relays, and in reports before it was measured). */
  scrapeUs?: number;
}

/** One round of the micro-benchmarks, per second on one thread; lookups by probe mix. */
export interface MicroRound {
  decisions: number;
  /** HS256 signs. */
  signs: number;
  /** EdDSA and ES256 signs (absent in reports before they were measured). */
  signsByAlgorithm?: Record<string, number>;
  /** The limits' bookkeeping for one inline request (absent in reports before it was measured). */
  limits?: number;
  lookups: Record<string, number>;
}

export interface Results {
  startedAt: string;
  quick: boolean;
  connections: number;
  /** Length and number of the saturation rounds. */
  seconds: number;
  rounds: number;
  loadBefore: number[];
  loadAfter?: number[];
  /** How long the measurements took. */
  minutes?: number;
  http: HttpResult[];
  alternatives: HttpResult[];
  websockets?: {
    idle: IdleCost & { wanted: number; fileLimit: number };
    /** The same idle load through the bare forwarders: what a Node relay costs at least. */
    floors: Record<string, IdleCost>;
    /** Every round's result per relay; the relays are measured one after the other in each round. */
    echo: { direct: EchoResult[]; sidecar: EchoResult[]; others: Record<string, EchoResult[]>; connections: number; messageBytes: number };
  };
  micro?: { rounds: MicroRound[] };
  coldStart?: ColdStart;
  /** The same command as tsc's module tree, before bundling. */
  coldStartUnbundled?: ColdStart;
  imports?: ImportCost[];
  /** Idle RSS of Node with the sidecar's built-ins and dependencies, none of its code (idle-floor.ts), and its file-backed part. */
  idleFloor?: { rssBytes: number[]; fileBytes: number[] };
  kubernetes?: KubeScaleResult;
  /**
   * The bare forwarder and the sidecar once more, each alone on a core (run.ts's `pinApart`),
   * in alternating rounds: each round's CPU per request of both (absent on a single CPU).
   */
  pinned?: { seconds: number; pairs: { bareUs: number; sidecarUs: number }[] };
  /** Where the inline path's CPU goes (V8's sampling profiler at saturation). */
  profile?: CpuProfileResult;
  /** Where the inline path's allocations go (V8's sampling heap profiler at saturation). */
  allocations?: AllocationProfile;
}

import type { KubeScaleResult } from './kube-scale.js';
import { flameGraphSvg, type CpuProfileResult, type FlameNode } from './cpu-profile.js';
import type { AllocationProfile } from './heap-profile.js';

const MB = 1024 * 1024;
const f = (n: number | undefined, digits = 2) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits));
const int = (n: number) => Math.round(n).toLocaleString('en-US');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Fixed = NonNullable<HttpResult['fixed']>;
/** A fixed-rate percentile: the median over rounds. */
const fixedP = (fixed: Fixed, p: string) => median(fixed.rounds.map((r) => r.percentiles[p]!));
/** A comparison of two paths, round by round (both measured within the round), then the median. */
function perRound<R>(a: R[], b: R[], compare: (a: R, b: R) => number): { median: number; rounds: number[] } {
  const rounds = a.slice(0, b.length).map((r, i) => compare(r, b[i]!));
  return { median: median(rounds), rounds };
}
/** A relay's echo rate over the rounds, and its rate against another's round by round. */
const echoRate = (rounds: EchoResult[]) => median(rounds.map((e) => e.perSecond));
const echoRatio = (a: EchoResult[], b: EchoResult[]) => perRound(a, b, (x, y) => x.perSecond / y.perSecond);
const p99 = (r: WrkResult) => r.percentiles['99']!;
/** A micro-benchmark's median over its rounds, and every round's figure. */
function microFigure(rounds: MicroRound[], of: (round: MicroRound) => number): { median: number; rounds: number[] } {
  const values = rounds.map(of);
  return { median: median(values), rounds: values };
}
const roundList = (xs: number[], digits: number) => xs.map((x) => f(x, digits)).join(', ');

export interface Target {
  name: string;
  goal: string;
  measured: string;
  met: boolean | undefined;
  /** What bounds the target, measured in the same run (the best reached without the sidecar's work). */
  limit?: string;
}

/** The sidecar's RSS with `n` idle WebSockets, from the measured before/after cost. */
function wsTotalAt(idle: IdleCost, n: number): number {
  if (idle.count >= n) return idle.after.rss;
  return idle.before.rss + ((idle.after.rss - idle.before.rss) / Math.max(1, idle.count)) * n;
}

export function targets(r: Results): Target[] {
  const by = (id: string) => r.http.find((h) => h.id === id);
  const direct = by('direct');
  const bare = by('forwarder-proxy-layer');
  const inline = by('sidecar');
  const nginx = by('nginx');
  const twoHop = [by('nginx-auth'), by('caddy-auth'), by('traefik-auth')].filter((h): h is HttpResult => h !== undefined);
  // The Node forwarders that check nothing: what any Node proxy costs here at least.
  const forwarders = [bare, ...r.alternatives].filter((h): h is HttpResult => h !== undefined);
  const out: Target[] = [];
  const work = requiredWork(r);
  if (inline && bare) {
    const ratio = perRound(inline.saturation, bare.saturation, (a, b) => a.rps / b.rps);
    // Throughput follows CPU per request: the bare forwarder's plus only the decision's own cost.
    const bareUs = bare.cpuPer10k === undefined ? undefined : bare.cpuPer10k * 100;
    const atSaturation = work.share !== undefined && inline.cpuPer10k !== undefined ? work.share * inline.cpuPer10k * 100 : undefined;
    const decisionUs = atSaturation ?? work.loopUs;
    out.push({
      name: `Inline throughput vs bare forwarder (median of ${ratio.rounds.length} rounds)`,
      goal: '≥ 0.90×',
      measured: `${f(ratio.median)}× (rounds: ${roundList(ratio.rounds, 2)})`,
      met: ratio.median >= 0.9,
      ...(bareUs !== undefined &&
        decisionUs !== undefined && {
          limit: `at most ${f(bareUs / (bareUs + decisionUs))}× with nothing added but the required work: ${f(bareUs, 0)} µs per request bare + ${f(decisionUs, 1)} µs for \`decide()\` and \`upstreamHeaders()\` ${atSaturation === undefined ? 'hot in a loop' : 'at saturation'}`,
        }),
    });
  }
  // The proxies a user would otherwise put in front, each doing real authentication work per request too.
  for (const [id, peer] of [
    ['oauth2-proxy', 'oauth2-proxy with a valid session'],
    ['kube-rbac-proxy', 'kube-rbac-proxy with a valid token'],
  ] as const) {
    const other = by(id);
    if (!inline || !other) continue;
    const ratio = perRound(inline.saturation, other.saturation, (a, b) => a.rps / b.rps);
    out.push({
      name: `Inline throughput vs ${peer} (median of ${ratio.rounds.length} rounds)`,
      goal: '≥ 1.0×',
      measured: `${f(ratio.median)}× (rounds: ${roundList(ratio.rounds, 2)})`,
      met: ratio.median >= 1,
    });
    if (inline.cpuPer10k !== undefined && other.cpuPer10k !== undefined) {
      const cpu = inline.cpuPer10k / other.cpuPer10k;
      out.push({
        name: `Sidecar CPU per request vs ${peer}`,
        goal: '≤ 1.0×',
        measured: `${f(cpu)}× (${f(inline.cpuPer10k * 100, 0)} vs ${f(other.cpuPer10k * 100, 0)} µs)`,
        met: cpu <= 1,
      });
    }
  }
  const checks = addedByChecks(r);
  if (checks) {
    const { bareUs, sidecarUs, added } = checks;
    const { loopUs } = work;
    const saturationUs = work.share === undefined ? undefined : work.share * sidecarUs;
    const pct = (us: number) => `${f((us / bareUs) * 100, 0)} %`;
    const figures = [
      ...(saturationUs === undefined
        ? []
        : [`${f(saturationUs, 1)} µs at saturation (their share of the CPU profile), ${pct(saturationUs)} of the bare data plane's request`]),
      ...(loopUs === undefined ? [] : [`${f(loopUs, 1)} µs (${pct(loopUs)}) hot in a loop`]),
    ];
    const how = checks.rounds === undefined ? '' : `median of ${checks.rounds.length} rounds, each alone on a core: `;
    const rounds =
      checks.rounds === undefined
        ? ''
        : `; rounds: ${roundList(
            checks.rounds.map((x) => x * 100),
            0,
          )} %`;
    out.push({
      name: 'What the checks, signing and metrics add to the data plane checking nothing (CPU per request)',
      goal: '≤ 10 %',
      measured: `${f(added * 100, 0)} % (${how}${f(sidecarUs, 0)} vs ${f(bareUs, 0)} µs${rounds})`,
      met: added <= 0.1,
      ...(figures.length > 0 && { limit: `\`decide()\` and \`upstreamHeaders()\` alone: ${figures.join('; ')}` }),
    });
  }
  if (inline?.cpuPer10k !== undefined && nginx?.cpuPer10k !== undefined) {
    const ratio = inline.cpuPer10k / nginx.cpuPer10k;
    const cheapest = lowest(
      forwarders.filter((h) => h.cpuPer10k !== undefined),
      (h) => h.cpuPer10k! / nginx.cpuPer10k!,
    );
    out.push({
      name: 'Sidecar CPU per request vs nginx proxy_pass',
      goal: '≤ 2.0×',
      measured: `${f(ratio)}× (${f(inline.cpuPer10k, 3)} vs ${f(nginx.cpuPer10k, 3)} CPU s / 10k req)`,
      met: ratio <= 2,
      ...(cheapest && { limit: `the cheapest Node forwarder, checking nothing: ${f(cheapest.value)}× (${cheapest.item.title})` }),
    });
  }
  const fixedTwoHop = twoHop.map((h) => h.fixed).filter((x): x is Fixed => x !== undefined);
  if (inline?.fixed && fixedTwoHop.length === twoHop.length && twoHop.length > 0) {
    // The better two-hop set-up of each round: the one with the lower p99 in that round.
    const rounds = inline.fixed.rounds.map((r, i) => p99(r) / Math.min(...fixedTwoHop.map((h) => p99(h.rounds[i]!))));
    const ratio = median(rounds);
    out.push({
      name: `Inline p99 vs the better two-hop set-up, at ${inline.fixed.rate} req/s (median of ${rounds.length} rounds)`,
      goal: '≤ 1.2×',
      measured: `${f(ratio)}× (rounds: ${roundList(rounds, 2)})`,
      met: ratio <= 1.2,
    });
  }
  if (inline && twoHop.length > 0) {
    const best = Math.min(...twoHop.map((h) => h.wrk.percentiles['99']!));
    const ratio = inline.wrk.percentiles['99']! / best;
    out.push({
      name: 'Inline p99 vs the better two-hop set-up, at saturation',
      goal: '≤ 1.2×',
      measured: `${f(ratio)}× (${f(inline.wrk.percentiles['99'], 3)} vs ${f(best, 3)} ms)`,
      met: ratio <= 1.2,
    });
  }
  if (inline?.fixed && direct?.fixed) {
    const added = perRound(inline.fixed.rounds, direct.fixed.rounds, (a, b) => p99(a) - p99(b));
    out.push({
      name: `Added p99 latency over direct at ${inline.fixed.rate} req/s (median of ${added.rounds.length} rounds)`,
      goal: '≤ 1 ms',
      measured: `${f(added.median, 3)} ms (rounds: ${roundList(added.rounds, 3)})`,
      met: added.median <= 1,
      ...addedLimit(forwarders, nginx, direct.fixed),
    });
  }
  if (r.websockets) {
    const { idle, echo } = r.websockets;
    const total = wsTotalAt(r.websockets.idle, idle.wanted);
    const held =
      idle.count < idle.wanted
        ? ` (${int(idle.count)} held, the most the sidecar accepts here, open file limit ${idle.fileLimit}; ${int(idle.wanted)} at the measured cost per connection)`
        : '';
    const leanest = lowest(Object.entries(r.websockets.floors), ([, cost]) => wsTotalAt(cost, idle.wanted));
    out.push({
      name: `${int(idle.wanted)} idle WebSockets through the sidecar, total RSS`,
      goal: '≤ 200 MB',
      measured: `${f(total / MB, 1)} MB${held}`,
      met: total <= 200 * MB,
      ...(leanest && { limit: `the leanest Node relay, checking nothing: ${f(leanest.value / MB, 1)} MB (${leanest.item[0]})` }),
    });
    const relay = echo.others[NGINX.title];
    if (relay) {
      const ratio = echoRatio(echo.sidecar, relay);
      const [fastest] = Object.entries(echo.others)
        .filter(([title]) => title !== NGINX.title)
        .map(([title, rounds]) => ({ title, ratio: echoRatio(rounds, relay).median }))
        .sort((a, b) => b.ratio - a.ratio);
      out.push({
        name: `WebSocket echo throughput vs nginx's relay (median of ${ratio.rounds.length} rounds)`,
        goal: '≥ 0.80×',
        measured: `${f(ratio.median)}× (rounds: ${roundList(ratio.rounds, 2)}; ${int(echoRate(echo.sidecar))} vs ${int(echoRate(relay))} round trips/s; direct ${int(echoRate(echo.direct))})`,
        met: ratio.median >= 0.8,
        ...(fastest && { limit: `the fastest Node relay, checking nothing: ${f(fastest.ratio)}× (${fastest.title})` }),
      });
    }
  }
  if (r.micro) {
    const { rounds } = r.micro;
    const signs = microFigure(rounds, (m) => m.signs);
    out.push({
      name: `Assertion signs per second (one core, median of ${rounds.length} rounds)`,
      goal: '≥ 200,000',
      measured: `${int(signs.median)} (rounds: ${signs.rounds.map(int).join(', ')})`,
      met: signs.median >= 200000,
    });
    const sidecarUs = inline?.cpuPer10k === undefined ? undefined : inline.cpuPer10k * 100;
    if (sidecarUs !== undefined && rounds.every((m) => m.limits !== undefined)) {
      const limitsUs = 1e6 / microFigure(rounds, (m) => m.limits!).median;
      const share = limitsUs / sidecarUs;
      out.push({
        name: "The limits' bookkeeping per inline request, as a share of the sidecar's CPU per request",
        goal: '≤ 3 %',
        measured: `${f(share * 100, 1)} % (${f(limitsUs, 2)} of ${f(sidecarUs, 0)} µs)`,
        met: share <= 0.03,
      });
    }
    const lookups = Object.keys(rounds[0]!.lookups).map((mix) => [mix, microFigure(rounds, (m) => m.lookups[mix]!).median] as const);
    const slowest = Math.min(...lookups.map(([, n]) => n));
    out.push({
      name: `Trusted-set lookups per second, 5,000 CIDRs (one core, slowest probe mix, median of ${rounds.length} rounds)`,
      goal: '≥ 5,000,000',
      measured: lookups.map(([k, n]) => `${k} ${int(n)}`).join('; '),
      met: slowest >= 5e6,
    });
  }
  if (r.coldStart) {
    const ready = median(r.coldStart.readyMs);
    const rss = median(r.coldStart.idleRssBytes);
    out.push({ name: 'Cold start to ready, no discovery (median)', goal: '≤ 300 ms', measured: `${f(ready, 0)} ms`, met: ready <= 300 });
    const floor = r.idleFloor;
    const node = r.imports?.find((i) => i.module.startsWith('('));
    // The file-backed part is mostly the Node executable's own pages: what no change to the sidecar's code moves.
    const files = (sidecar: number[], of: number[]) =>
      `; of these, pages of the Node executable and its libraries (file-backed): ${f(median(sidecar) / MB, 1)} MB of the sidecar's, ${f(median(of) / MB, 1)} of the floor's`;
    out.push({
      name: 'Idle RSS (median)',
      goal: '≤ 60 MB',
      measured: `${f(rss / MB, 1)} MB`,
      met: rss <= 60 * MB,
      ...(floor && {
        limit: `Node with the built-ins and dependencies the sidecar loads, each used once, none of its own code: ${f(median(floor.rssBytes) / MB, 1)} MB${node ? ` (Node alone ${f(node.rssBytes / MB, 1)})` : ''}${files(r.coldStart.idleFileBytes, floor.fileBytes)}`,
      }),
    });
  }
  return out;
}

/** The item with the lowest value, if any. */
function lowest<T>(items: T[], value: (item: T) => number): { item: T; value: number } | undefined {
  let best: { item: T; value: number } | undefined;
  for (const item of items) {
    const v = value(item);
    if (best === undefined || v < best.value) best = { item, value: v };
  }
  return best;
}

/** The least p99 any Node forwarder adds at the fixed rate, checking nothing; nginx's beside it. */
function addedLimit(forwarders: HttpResult[], nginx: HttpResult | undefined, direct: Fixed): { limit?: string } {
  const added = (h: HttpResult) => perRound(h.fixed!.rounds, direct.rounds, (a, b) => p99(a) - p99(b)).median;
  const least = lowest(
    forwarders.filter((h) => h.fixed !== undefined),
    added,
  );
  if (!least) return {};
  const beside = nginx?.fixed ? `; ${nginx.title} adds ${f(added(nginx), 3)} ms` : '';
  return { limit: `the least any Node forwarder adds, checking nothing: ${f(least.value, 3)} ms (${least.item.title})${beside}` };
}

function httpTable(rows: HttpResult[], direct: HttpResult | undefined, nginx: HttpResult | undefined): string[] {
  const lines = [
    '| path | req/s | × direct | × nginx | p50 ms | p99 ms | p99.9 ms | CPU s / 10k req | CPU × nginx | RSS MB | req/s per round |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const h of rows) {
    const p = h.wrk.percentiles;
    lines.push(
      `| ${h.title} | ${int(h.wrk.rps)} | ${direct ? f(h.wrk.rps / direct.wrk.rps) : '—'} | ${nginx ? f(h.wrk.rps / nginx.wrk.rps) : '—'} | ${f(p['50'])} | ${f(p['99'])} | ${f(p['99.9'])} | ${f(h.cpuPer10k, 3)} | ${h.cpuPer10k !== undefined && nginx?.cpuPer10k ? f(h.cpuPer10k / nginx.cpuPer10k) : '—'} | ${h.rssBytes ? f(h.rssBytes / MB, 1) : '—'} | ${h.saturation.map((r) => int(r.rps)).join(', ')} |`,
    );
  }
  return lines;
}

function fixedTable(rows: HttpResult[], direct: HttpResult | undefined): string[] {
  const measured = rows.filter((h) => h.fixed !== undefined);
  const first = measured[0]?.fixed;
  if (!first) return [];
  return [
    `## Latency at a fixed ${first.rate} requests/s (${first.rounds.length} rounds of ${f(first.rounds[0]!.seconds, 0)} s per path)`,
    '',
    'Poisson arrivals from 100 connections (wrk with random waits between requests). Percentiles are medians over the rounds;',
    '"added over direct" is each round\'s p99 minus direct\'s p99 in the same round, then the median.',
    'CPU per request is that of the proxying processes over all rounds; beside it, the same at saturation (the table above):',
    'at this rate each request finds the process idle and its caches cold, and the busier a path keeps its process, the longer',
    'a request that arrives meanwhile waits.',
    '',
    '| path | requests | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | p99 per round ms | p99 added over direct ms | CPU µs / req | at saturation |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|',
    ...measured.map((h) => {
      const x = h.fixed!;
      const added = direct?.fixed ? f(perRound(x.rounds, direct.fixed.rounds, (a, b) => p99(a) - p99(b)).median, 3) : '—';
      const requests = x.rounds.reduce((n, r) => n + r.requests, 0);
      const cpu = x.cpuSeconds === undefined ? undefined : (x.cpuSeconds / requests) * 1e6;
      const saturated = h.cpuPer10k === undefined ? undefined : h.cpuPer10k * 100;
      return `| ${h.title} | ${int(requests)} | ${int(median(x.rounds.map((r) => r.rps)))} | ${f(fixedP(x, '50'), 3)} | ${f(fixedP(x, '90'), 3)} | ${f(fixedP(x, '99'), 3)} | ${f(fixedP(x, '99.9'), 3)} | ${roundList(x.rounds.map(p99), 2)} | ${added} | ${f(cpu, 0)} | ${f(saturated, 0)} |`;
    }),
    '',
  ];
}

function coldRows(label: string, c: ColdStart): string[] {
  return [
    `| spawn → /readyz 200${label} | ${f(median(c.readyMs), 0)} ms | ${c.readyMs.map((x) => x.toFixed(0)).join(', ')} |`,
    `| idle RSS after 2 s${label} | ${f(median(c.idleRssBytes) / MB, 1)} MB | ${c.idleRssBytes.map((x) => (x / MB).toFixed(1)).join(', ')} |`,
    `| of it, pages of the Node executable and its libraries (file-backed)${label} | ${f(median(c.idleFileBytes) / MB, 1)} MB | ${c.idleFileBytes.map((x) => (x / MB).toFixed(1)).join(', ')} |`,
  ];
}

function versions(): string {
  // nginx and wrk print their versions on stderr, and wrk exits 1 doing it.
  const first = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? cmd;
  };
  const nginx = first('nginx', ['-v']).replace('nginx version: ', '');
  const caddy = first('caddy', ['version']).split(' ')[0];
  const wrk = first('wrk', ['-v']).split(' [')[0];
  const traefik = first('.tools/bin/traefik', ['version']).split(/\s+/)[1];
  const oauth2Proxy = first('.tools/bin/oauth2-proxy', ['--version']).split(' ')[1];
  const kubeRbacProxy = first('.tools/bin/kube-rbac-proxy', ['--version']).split(' ')[1];
  return `Node ${process.version}, ${nginx}, Caddy ${caddy}, Traefik ${traefik}, oauth2-proxy ${oauth2Proxy}, kube-rbac-proxy ${kubeRbacProxy}, ${wrk}`;
}

/** What the checks, signing and metrics add to the bare forwarder's CPU per request. */
interface ChecksCost {
  bareUs: number;
  sidecarUs: number;
  added: number;
  /** Each round's added share, where the figures come from rounds with each alone on a core. */
  rounds: number[] | undefined;
}

/** From the saturation rounds, with every path sharing the cores. */
function sharedCoresCost(r: Results): ChecksCost | undefined {
  const bare = r.http.find((h) => h.id === 'forwarder-proxy-layer')?.cpuPer10k;
  const inline = r.http.find((h) => h.id === 'sidecar')?.cpuPer10k;
  if (bare === undefined || inline === undefined) return undefined;
  return { bareUs: bare * 100, sidecarUs: inline * 100, added: inline / bare - 1, rounds: undefined };
}

/** From the rounds with each alone on a core: the median of the rounds' ratios, and of each one's figures. */
function pinnedCost(r: Results): ChecksCost | undefined {
  if (!r.pinned) return undefined;
  const rounds = r.pinned.pairs.map((p) => p.sidecarUs / p.bareUs - 1);
  return { bareUs: median(r.pinned.pairs.map((p) => p.bareUs)), sidecarUs: median(r.pinned.pairs.map((p) => p.sidecarUs)), added: median(rounds), rounds };
}

/** The target's figure: alone on a core where those rounds ran, else from the saturation rounds. */
const addedByChecks = (r: Results) => pinnedCost(r) ?? sharedCoresCost(r);

/** Both, in the saturation section. */
function checksCost(r: Results): string[] {
  const shared = sharedCoresCost(r);
  if (!shared) return [];
  const lines = [
    `CPU per request, with the load generator and the upstream on the same cores: the bare forwarder ${f(shared.bareUs, 0)} µs, the sidecar ${f(shared.sidecarUs, 0)} µs; the checks, signing and metrics add ${f(shared.sidecarUs - shared.bareUs, 0)} µs (${f(shared.added * 100, 0)} %).`,
  ];
  const alone = pinnedCost(r);
  if (r.pinned && alone) {
    lines.push(
      `Each alone on a core (the load generator and the upstream on the other cores), in ${r.pinned.pairs.length} alternating rounds of ${r.pinned.seconds} s: the bare forwarder ${f(alone.bareUs, 0)} µs, the sidecar ${f(alone.sidecarUs, 0)} µs (medians); the checks, signing and metrics add ${f(alone.added * 100, 0)} % (the median of the rounds' ratios; the target's figure).`,
    );
  }
  return [lines.join(' '), ''];
}

export function markdown(r: Results): string {
  const by = (id: string) => r.http.find((h) => h.id === id);
  const direct = by('direct');
  const nginx = by('nginx');
  const t = targets(r);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    '# Performance report',
    '',
    `Generated by \`make bench\` on ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC${r.quick ? ' (**quick run: not representative**)' : ''}${r.minutes === undefined ? '' : `, in ${f(r.minutes, 1)} minutes`}.`,
    `Machine: ${cpus().length} × ${cpu}, ${Math.round(totalmem() / 1024 ** 3)} GiB; ${versions()}.`,
    `Load average (1, 5, 15 min) before: ${r.loadBefore.map((l) => l.toFixed(2)).join(', ')}; after: ${(r.loadAfter ?? []).map((l) => l.toFixed(2)).join(', ')}.`,
    '',
    'Everything runs on loopback on the same machine (load generator, proxies and upstream share the cores), so',
    'absolute numbers move from run to run; the ratios, all taken in this one run, are what to compare.',
    'How it is measured and what the numbers mean: [docs/performance.md](../docs/performance.md).',
    '',
    '## Targets',
    '',
    'Beside a target, where this run measured it, what bounds it: the best that Node forwarders and relays checking nothing,',
    "or nginx, reach in the same run; the ceiling that the required work alone leaves; or the idle RSS of Node with the sidecar's dependencies alone.",
    '[docs/performance.md](../docs/performance.md) explains each.',
    '',
    '| target | goal | measured | met | limit measured in this run |',
    '|---|---|---|---|---|',
    ...t.map((x) => `| ${x.name} | ${x.goal} | ${x.measured} | ${x.met === undefined ? '—' : x.met ? 'yes' : '**no**'} | ${x.limit ?? '—'} |`),
    '',
    '![Latency distributions](performance.png)',
    '',
    `## HTTP at saturation (wrk, 1 thread, ${r.connections} keep-alive connections; ${r.rounds} rounds of ${r.seconds} s per path)`,
    '',
    'Every path runs at once and each round measures them one after the other, so a slow spell of the shared machine lands in one',
    "round of one path. Rates and percentiles are those of each path's round with the median rate (every round's rate is listed);",
    'CPU per request is over all rounds. CPU and RSS are those of the proxying processes (for the two-hop set-ups, the front proxy',
    'and the sidecar together).',
    '',
    ...httpTable(r.http, direct, nginx),
    '',
    ...checksCost(r),
    ...fixedTable(r.http.concat(r.alternatives), direct),
  ];
  if (r.alternatives.length > 0) {
    lines.push(
      '## Proxy layer alternatives (bare forwarders, no checks)',
      '',
      ...httpTable(r.http.filter((h) => h.id === 'forwarder-proxy-layer').concat(r.alternatives), direct, nginx),
      '',
    );
  }
  if (r.websockets) {
    const { idle, echo } = r.websockets;
    const n = Math.max(1, idle.count);
    lines.push(
      '## WebSockets',
      '',
      '| measure | value |',
      '|---|---:|',
      `| idle WebSockets held through the sidecar | ${int(idle.count)} |`,
      `| sidecar RSS before → after | ${f(idle.before.rss / MB, 1)} → ${f(idle.after.rss / MB, 1)} MB |`,
      `| RSS per connection through the sidecar | ${f((idle.after.rss - idle.before.rss) / n / 1024, 1)} KiB |`,
      `| JS heap in use per connection (of the RSS above) | ${f((idle.after.heap - idle.before.heap) / n / 1024, 1)} KiB |`,
      `| open fds before → after | ${int(idle.before.fds)} → ${int(idle.after.fds)} |`,
      `| fds per connection | ${f((idle.after.fds - idle.before.fds) / n)} |`,
      ...(idle.before.scrapeUs !== undefined && idle.after.scrapeUs !== undefined
        ? [
            `| sidecar CPU per \`/metrics\` scrape, before → after | ${f(idle.before.scrapeUs, 0)} → ${f(idle.after.scrapeUs, 0)} µs (${f(idle.after.scrapeUs / idle.before.scrapeUs)}×) |`,
          ]
        : []),
      ...Object.entries(r.websockets.floors).map(
        ([title, c]) =>
          `| RSS per connection through ${title} (${int(c.count)} idle; ${f(c.before.rss / MB, 1)} → ${f(c.after.rss / MB, 1)} MB) | ${f((c.after.rss - c.before.rss) / Math.max(1, c.count) / 1024, 1)} KiB |`,
      ),
      `| echo round trips/s direct (${echo.connections} connections, ${echo.messageBytes} B; median of ${echo.direct.length} rounds) | ${int(echoRate(echo.direct))} (rounds: ${echo.direct.map((e) => int(e.perSecond)).join(', ')}) |`,
      ...[['the sidecar', echo.sidecar] as const, ...Object.entries(echo.others)].map(
        ([title, rounds]) =>
          `| echo round trips/s through ${title} | ${int(echoRate(rounds))} (${f(echoRatio(rounds, echo.direct).median)}× direct; rounds: ${rounds.map((e) => int(e.perSecond)).join(', ')}) |`,
      ),
      '',
    );
  }
  if (r.micro) {
    const { rounds } = r.micro;
    const row = (what: string, of: (m: MicroRound) => number) => {
      const x = microFigure(rounds, of);
      return `| ${what} | ${int(x.median)} | ${x.rounds.map(int).join(', ')} |`;
    };
    lines.push(
      `## Micro-benchmarks (one thread; ${rounds.length} rounds spread over the run: first, after the HTTP phases, last)`,
      '',
      '| operation | per second (median) | per round |',
      '|---|---:|---|',
      row("`decide()` + `upstreamHeaders()` on wrk's request (source, request with wrk's header lines, identity, policy, assertion)", (m) => m.decisions),
      row('`AssertionSigner.sign()`, HS256', (m) => m.signs),
      ...Object.keys(rounds[0]!.signsByAlgorithm ?? {}).map((algorithm) =>
        row(`\`AssertionSigner.sign()\`, ${algorithm}`, (m) => m.signsByAlgorithm?.[algorithm] ?? 0),
      ),
      ...(rounds.every((m) => m.limits !== undefined)
        ? [row("the limits' bookkeeping for one inline request (owed response, identity share, gateway slot, release)", (m) => m.limits!)]
        : []),
      ...Object.keys(rounds[0]!.lookups).map((mix) => row(`trusted-set lookup, 5,000 CIDRs + 200 IPs, ${mix} addresses`, (m) => m.lookups[mix]!)),
      '',
    );
  }
  if (r.profile) {
    const p = r.profile;
    const kinds = (['sidecar', 'dependency', 'node', 'vm'] as const).map((kind) => [kind, sharesOf(p.tree, kind)] as const);
    const decisionShare = inclusiveShare(p.tree, DECISION_FRAMES);
    lines.push(
      "## Where the inline request's CPU goes",
      '',
      `V8's sampling profiler (\`--cpu-prof\`) on the sidecar inline at saturation: ${int(p.samples)} samples over ${p.seconds} s at ${int(p.rps)} req/s, ` +
        `${f(p.cpuMicrosPerRequest, 1)} µs of CPU per request (the profiler's own cost and the start-up included; idle samples left out). Self time by where the code lives: ` +
        kinds
          .map(
            ([kind, share]) =>
              `${{ sidecar: 'the sidecar', dependency: 'npm packages', node: "Node's JavaScript", vm: 'V8, native code and GC' }[kind]} ${f(share * 100, 1)} %`,
          )
          .join(', ') +
        `. The decision, \`decide()\` and \`upstreamHeaders()\` with all they call, is ${f(decisionShare * 100, 1)} % of the samples (${f(decisionShare * p.cpuMicrosPerRequest, 1)} µs per request). ` +
        "The functions with the most self time, each as its share of one request's CPU:",
      '',
      '| function | share | µs per request |',
      '|---|---:|---:|',
      ...p.top.map((t) => `| \`${t.name.replace(/\|/g, '\\|')}\` | ${f(t.share * 100, 1)} % | ${f(t.microsPerRequest, 1)} |`),
      '',
      '![Flame graph of the inline path](performance-flame.png)',
      '',
    );
  }
  if (r.allocations) {
    const a = r.allocations;
    const kb = (bytes: number) => f(bytes / 1024, 2);
    lines.push(
      "## Where the inline request's allocations go",
      '',
      `V8's sampling heap profiler (one sample per KiB allocated, objects the collector already freed counted too) on the sidecar inline at saturation: ` +
        `${int(a.requests)} requests over ${a.seconds} s, **${kb(a.bytesPerRequest)} KiB allocated per request**: ` +
        (['sidecar', 'dependency', 'node', 'vm'] as const)
          .map(
            (kind) =>
              `${{ sidecar: 'the sidecar', dependency: 'npm packages', node: "Node's JavaScript", vm: 'V8 and native code' }[kind]} ${kb(a.byKind[kind])} KiB`,
          )
          .join(', ') +
        '. The functions that allocate the most:',
      '',
      '| function | KiB per request |',
      '|---|---:|',
      ...a.top.map((t) => `| \`${t.name.replace(/\|/g, '\\|')}\` | ${kb(t.bytesPerRequest)} |`),
      '',
    );
  }
  if (r.coldStart) {
    const c = r.coldStart;
    lines.push(
      '## Cold start',
      '',
      '| measure | median | all runs |',
      '|---|---:|---|',
      ...coldRows('', c),
      ...(r.coldStartUnbundled ? coldRows(' (unbundled module tree)', r.coldStartUnbundled) : []),
      ...(r.idleFloor
        ? [
            `| idle RSS after 2 s, the floor: Node with the sidecar's built-ins and dependencies only, bundled alike (bench/idle-floor.ts) | ${f(median(r.idleFloor.rssBytes) / MB, 1)} MB | ${r.idleFloor.rssBytes.map((x) => (x / MB).toFixed(1)).join(', ')} |`,
            `| of it, pages of the Node executable and its libraries (file-backed), the floor | ${f(median(r.idleFloor.fileBytes) / MB, 1)} MB | ${r.idleFloor.fileBytes.map((x) => (x / MB).toFixed(1)).join(', ')} |`,
          ]
        : []),
      '',
    );
  }
  if (r.imports) {
    lines.push(
      'Where start-up goes: a fresh Node process importing one module unbundled, as an ES module (time to import, RSS afterwards):',
      '',
      '| module | import ms | RSS MB |',
      '|---|---:|---:|',
      ...r.imports.map((i) => `| \`${i.module}\` | ${f(i.ms, 0)} | ${f(i.rssBytes / MB, 1)} |`),
      '',
    );
  }
  if (r.kubernetes) lines.push(...kubernetesSection(r.kubernetes));
  return lines.join('\n');
}

/** Discovery at cluster scale, and what a fleet of sidecars would put on the API server. */
function kubernetesSection(k: KubeScaleResult): string[] {
  const perWatcher = (k.watch.cpuWith - k.watch.cpuWithout) / k.watch.watchers;
  const fleet = 1000;
  const podsMode = k.modes[0]!;
  return [
    `## Kubernetes discovery at scale (the real API server: ${int(k.nodes)} nodes, ${int(k.pods)} pods, ${k.ingressPods} of them the ingress controller's)`,
    '',
    `Seeded through the API in ${f(k.seedSeconds, 0)} s. Each mode: the sidecar (\`serve\`, in-cluster with a ServiceAccount token) from start to ready.`,
    '',
    '| mode | start to ready (synced) | sidecar RSS | trusted entries | API server + storage CPU for that start |',
    '|---|---:|---:|---:|---:|',
    ...k.modes.map((m) => `| ${m.name} | ${f(m.syncSeconds, 2)} s | ${f(m.rssBytes / MB, 1)} MB | ${int(m.entries)} | ${f(m.apiCpuSeconds, 2)} s |`),
    '',
    `Watch cost: ${k.watch.changes} pod changes (outside every selector) took ${f(k.watch.cpuWithout, 2)} s of API server and storage CPU with no sidecar watching,`,
    `${f(k.watch.cpuWith, 2)} s with ${k.watch.watchers} sidecars watching pods (the lower of two passes each):`,
    perWatcher > 0
      ? `${f((perWatcher / k.watch.changes) * 1e6, 0)} µs per change per watching sidecar.`
      : 'the difference is below what this run resolves (within the noise of the passes).',
    '',
    `A fleet of ${int(fleet)} gateway replicas, each with its sidecar in pods mode: a rollout of all of them costs the API server about`,
    `${f(fleet * podsMode.apiCpuSeconds, 0)} CPU seconds of initial lists (${f(podsMode.apiCpuSeconds, 2)} s each, spread over the rollout)` +
      (perWatcher > 0
        ? `; in steady state every pod change in the cluster costs about ${f(((perWatcher * fleet) / k.watch.changes) * 1000, 1)} ms of API server CPU across the fleet's ${int(fleet)} watches.`
        : '.'),
    '',
  ];
}

// ------------------------------------------------------------------------------ chart

const COLOURS = ['#222222', '#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2'];
const NINES = [50, 90, 99, 99.9, 99.99];
const nines = (p: number) => -Math.log10(1 - Math.min(p, 99.999) / 100);

function panel(title: string, series: { name: string; points: [number, number][] }[], x0: number, w: number, h: number): string {
  const left = x0 + 70;
  const top = 60;
  const width = w - 115;
  const height = h - 180;
  const all = series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => y > 0);
  const yMin = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
  const yMax = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const xMax = nines(99.99);
  const X = (p: number) => left + (nines(p) / xMax) * width;
  const Y = (ms: number) => top + height - ((Math.log10(Math.max(ms, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * height;
  const out = [`<text x="${x0 + w / 2}" y="32" font-size="20" text-anchor="middle" font-weight="bold">${title}</text>`];
  out.push(`<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`);
  for (const p of NINES) {
    out.push(`<line x1="${X(p)}" y1="${top}" x2="${X(p)}" y2="${top + height}" stroke="#ddd"/>`);
    out.push(`<text x="${X(p)}" y="${top + height + 22}" font-size="15" text-anchor="middle">p${p}</text>`);
  }
  for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > yMax * 1.0001) break;
      out.push(`<line x1="${left}" y1="${Y(v)}" x2="${left + width}" y2="${Y(v)}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`);
      out.push(`<text x="${left - 8}" y="${Y(v) + 5}" font-size="14" text-anchor="end">${+v.toPrecision(2)}</text>`);
    }
  }
  out.push(`<text x="${left + width / 2}" y="${top + height + 48}" font-size="15" text-anchor="middle">percentile</text>`);
  out.push(
    `<text x="${x0 + 18}" y="${top + height / 2}" font-size="15" text-anchor="middle" transform="rotate(-90 ${x0 + 18} ${top + height / 2})">latency (ms, log scale)</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points
      .filter(([p]) => p <= 99.99)
      .map(([p, y], j) => `${j === 0 ? 'M' : 'L'}${X(p).toFixed(1)},${Y(y).toFixed(1)}`)
      .join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"/>`);
  });
  return out.join('\n');
}

function legend(names: string[], x: number, y: number, width: number): string {
  const columns = 3;
  return names
    .map((name, i) => {
      const lx = x + (i % columns) * (width / columns);
      const ly = y + Math.floor(i / columns) * 26;
      const colour = COLOURS[i % COLOURS.length];
      const text = name.replace(/&/g, '&amp;').replace(/</g, '&lt;');
      return `<line x1="${lx}" y1="${ly - 5}" x2="${lx + 30}" y2="${ly - 5}" stroke="${colour}" stroke-width="4"/><text x="${lx + 38}" y="${ly}" font-size="16">${text}</text>`;
    })
    .join('\n');
}

export function chartSvg(r: Results): { svg: string; width: number; height: number } {
  const width = 1500;
  const height = 760;
  const saturation = r.http.map((h) => ({
    name: h.title,
    points: Object.entries(h.wrk.percentiles)
      .map(([p, ms]) => [Number(p), ms] as [number, number])
      .filter(([p]) => p >= 50)
      .sort((a, b) => a[0] - b[0]),
  }));
  // Per percentile, the median over the rounds.
  const fixed = r.http.map((h) => {
    const rounds = h.fixed?.rounds ?? [];
    const curve = (rounds[0]?.distribution ?? []).map((_, i) => median(rounds.map((x) => x.distribution[i]!)));
    return {
      name: h.title,
      points: curve
        .map((ms, i) => [((i + 1) / curve.length) * 100, ms] as [number, number])
        .filter(([p]) => p >= 50 && p < 100)
        .concat(h.fixed ? [[99.9, fixedP(h.fixed, '99.9')]] : []),
    };
  });
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    panel(`At saturation (wrk, ${r.connections} connections)`, saturation, 0, width / 2, height),
    panel(`At a fixed ${r.http[0]?.fixed?.rate ?? 2000} requests/s (median of rounds)`, fixed, width / 2, width / 2, height),
    legend(
      r.http.map((h) => h.title),
      70,
      height - 48,
      width - 100,
    ),
    '</svg>',
  ].join('\n');
  return { svg, width, height };
}

export async function writeReport(r: Results, dir: string): Promise<void> {
  writeFileSync(join(dir, 'performance.md'), markdown(r));
  renderPng(chartSvg(r), join(dir, 'performance.png'));
  if (r.profile) {
    const title = `The sidecar inline at saturation: ${r.profile.samples} samples over ${r.profile.seconds} s, ${Math.round(r.profile.rps)} req/s, ${r.profile.cpuMicrosPerRequest.toFixed(0)} µs of CPU per request`;
    renderPng(flameGraphSvg(r.profile.tree, 1400, title), join(dir, 'performance-flame.png'));
  }
}

/** The share of all samples spent in frames of one kind (self time). */
function sharesOf(tree: FlameNode, kind: FlameNode['kind']): number {
  const self = (n: FlameNode): number =>
    (n.kind === kind ? n.total - n.children.reduce((a, c) => a + c.total, 0) : 0) + n.children.reduce((a, c) => a + self(c), 0);
  return self(tree) / Math.max(tree.total, 1);
}

/** The share of all samples spent in frames of these names and all they call (a frame inside another counted once). */
function inclusiveShare(tree: FlameNode, names: readonly string[]): number {
  const under = (n: FlameNode): number => (names.includes(n.name) ? n.total : n.children.reduce((a, c) => a + under(c), 0));
  return under(tree) / Math.max(tree.total, 1);
}

/** The required work: the decision and the gateway's header lines, the frames the hot loop (micro.ts) runs. */
const DECISION_FRAMES = ['decide src/decision/decide.ts', 'upstreamHeaders src/decision/gateway-headers.ts'];

/**
 * What the required work costs per request: at saturation, its share of the CPU profile's
 * samples (times a CPU per request of the sidecar, it is microseconds), where there is a
 * profile (in a loop it stays hot in the caches, which it is not between the writes of a
 * running sidecar); and hot in a loop.
 */
function requiredWork(r: Results): { share: number | undefined; loopUs: number | undefined } {
  const loopUs = r.micro ? 1e6 / microFigure(r.micro.rounds, (m) => m.decisions).median : undefined;
  const share = r.profile ? inclusiveShare(r.profile.tree, DECISION_FRAMES) : undefined;
  return { share, loopUs };
}

/** An SVG as a PNG, by Chromium's screenshot of it. */
function renderPng({ svg, width, height }: { svg: string; width: number; height: number }, png: string): void {
  const work = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-chart-')));
  const svgPath = join(work, 'chart.svg');
  writeFileSync(svgPath, svg);
  execFileSync(
    'chromium',
    [
      '--headless',
      ...CHROMIUM_ARGS,
      '--hide-scrollbars',
      `--user-data-dir=${join(work, 'profile')}`,
      `--window-size=${width},${height}`,
      `--screenshot=${png}`,
      `file://${svgPath}`,
    ],
    { stdio: 'pipe', timeout: 60000 },
  );
  if (readFileSync(png).subarray(1, 4).toString() !== 'PNG') throw new Error('Chromium wrote no PNG');
}
