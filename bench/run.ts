// `make bench`: every path to one upstream, measured in one run on this machine, then
// written up as reports/performance.md and a latency chart. `--quick` shortens every
// phase for trying the benchmark out (its numbers are not for the report).
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { coldStarts, idleFloor, importCosts } from './coldstart.js';
import { profileInline } from './cpu-profile.js';
import { allocationsInline } from './heap-profile.js';
import { kubeScale } from './kube-scale.js';
import { fixedRate, wrk, WRK_PATH, type WrkResult } from './load.js';
import { decisions, limitsBookkeeping, signs } from './micro.js';
import { ALTERNATIVES, BARE, forkChild, INLINE, NGINX, NODE_RELAY, PATHS, type PathSpec, type RunningPath } from './paths.js';
import { configSchema } from '../src/config/schema.js';
import { defaultMaxConnections } from '../src/server/data-plane.js';
import { cleanup, cleanupSync, cpuSeconds, openFds, openFileLimit, rssBytes, stopChild } from './procs.js';
import { writeReport } from './report.js';
import { targets } from './targets.js';
import type { HttpResult, IdleCost, MicroRound, Results } from './results.js';
import { imageEnv } from './sidecar.js';
import { echo, openIdle, type EchoResult } from './ws.js';

const quick = process.argv.includes('--quick');
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
// Quick: every phase runs and delivers, on the shortest spans that do (make test runs it;
// its figures are not representative, and nothing judges them).
const T = quick
  ? {
      warm: 1,
      wrk: 1,
      wrkRounds: 2,
      pinnedRounds: 3,
      pinnedSeconds: 1,
      rateRounds: 2,
      rateSeconds: 1,
      wsIdle: 1000,
      echo: 1,
      echoRounds: 2,
      micro: 0.5,
      coldRuns: 2,
      kube: { nodes: 300, pods: 1200, watchers: 2, changes: 200 },
    }
  : {
      warm: 2,
      wrk: 3,
      wrkRounds: 5,
      pinnedRounds: 20,
      pinnedSeconds: 2,
      rateRounds: 11,
      rateSeconds: 3,
      wsIdle: 10000,
      echo: 4,
      echoRounds: 3,
      micro: 2,
      coldRuns: 5,
      kube: { nodes: 5000, pods: 20000, watchers: 5, changes: 1000 },
    };
const CONNECTIONS = 50;
const ECHO = { connections: 32, messageBytes: 1024 };
const RATE = 2000;
const wanted = (id: string) => only === undefined || only.includes(id);
const REPORT_DIR = new URL('../../../reports/', import.meta.url).pathname;
const UPSTREAM = new URL('./upstream.js', import.meta.url).pathname;
const TRUSTED_SET = new URL('./trusted-set.bench.js', import.meta.url).pathname;
const run = promisify(execFile);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanupSync();
    process.exit(130);
  });
}

const began = performance.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${message}\n`);
}

function sum(pids: number[], f: (pid: number) => number): number {
  return pids.reduce((n, pid) => n + f(pid), 0);
}

interface UpstreamStats {
  count: number;
  last: { url: string; rawHeaders: string[] } | undefined;
}

async function upstreamStats(upstream: ChildProcess): Promise<UpstreamStats> {
  const answer = new Promise<UpstreamStats>((resolve) => upstream.once('message', (m) => resolve(m as UpstreamStats)));
  upstream.send({ type: 'stats' });
  return answer;
}

/**
 * Every measured request must have reached the upstream (a front proxy answering on its
 * own, say for a Host it does not serve, would look fast), and through the sidecar with
 * an assertion.
 */
function checkDelivery(path: PathSpec, requests: number, before: UpstreamStats, after: UpstreamStats): void {
  const arrived = after.count - before.count;
  if (arrived < requests) throw new Error(`${path.title}: wrk counted ${requests} answers but only ${arrived} reached the upstream`);
  const names = new Set((after.last?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()));
  if (path.signed && !names.has('x-trusted-proxy-assertion')) throw new Error(`${path.title}: the upstream got no assertion`);
  if (after.last?.url !== WRK_PATH) throw new Error(`${path.title}: the upstream got ${after.last?.url}, not ${WRK_PATH}`);
}

/** One path's rounds under one load, with its proxying processes' CPU over them and RSS after. */
interface Measured {
  rounds: WrkResult[];
  cpuSeconds: number | undefined;
  /** The same CPU, round by round. */
  roundCpuSeconds: number[];
  rssBytes: number | undefined;
}

/**
 * Measures paths in rounds: every path is started at once and warmed up, then each round
 * runs the load against each path in turn, starting each round with the next path, so a
 * slow spell of the shared machine lands in one round of one path rather than in all of
 * one path's measurement. The report takes medians over rounds. CPU is that of the
 * proxying processes over all rounds (undefined for direct), RSS theirs after the last.
 * `pinned`: the proxies on a core of their own (`pinApart`).
 */
async function inRounds(
  what: string,
  specs: PathSpec[],
  load: (path: RunningPath, seconds: number) => Promise<WrkResult>,
  plan: { warm: number; rounds: number; seconds: number; pinned?: boolean },
  upstreamPort: number,
  upstream: ChildProcess,
): Promise<Measured[]> {
  const running: RunningPath[] = [];
  try {
    for (const spec of specs) running.push(await spec.start(upstreamPort));
    if (plan.pinned)
      pinApart(
        running.flatMap((r) => r.pids()),
        upstream.pid!,
      );
    const measured = specs.map((): Measured => ({ rounds: [], cpuSeconds: 0, roundCpuSeconds: [], rssBytes: undefined }));
    const once = async (i: number, seconds: number) => {
      const pids = running[i]!.pids();
      const stats = await upstreamStats(upstream);
      const cpuBefore = sum(pids, cpuSeconds);
      const result = await load(running[i]!, seconds);
      const cpu = sum(pids, cpuSeconds) - cpuBefore;
      const errors = Object.entries(result.errors)
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${n} ${kind}`);
      if (errors.length > 0 || result.non2xx > 0)
        throw new Error(`${specs[i]!.title}: errors: ${errors.join(', ') || 'none'}; ${result.non2xx} non-2xx at ${what}`);
      checkDelivery(specs[i]!, result.requests, stats, await upstreamStats(upstream));
      return { result, cpu };
    };
    for (let i = 0; i < specs.length; i++) await once(i, plan.warm);
    for (let round = 0; round < plan.rounds; round++) {
      log(`${what}: round ${round + 1} of ${plan.rounds}`);
      for (let k = 0; k < specs.length; k++) {
        const i = (round + k) % specs.length;
        const { result, cpu } = await once(i, plan.seconds);
        measured[i]!.rounds.push(result);
        measured[i]!.cpuSeconds! += cpu;
        measured[i]!.roundCpuSeconds.push(cpu);
      }
    }
    return specs.map((spec, i) => {
      const m = measured[i]!;
      log(`${spec.title} at ${what}: ${m.rounds.map((r) => `${r.rps.toFixed(0)}/s p99 ${r.percentiles['99']!.toFixed(2)} ms`).join(', ')}`);
      const pids = running[i]!.pids();
      return pids.length > 0 ? { ...m, rssBytes: sum(pids, rssBytes) } : { ...m, cpuSeconds: undefined };
    });
  } finally {
    if (plan.pinned) unpin(upstream.pid!);
    for (const r of running) await r.stop();
  }
}

/** The CPUs the runner may use (its affinity, which a cpuset may limit), read before any pinning. */
const CPUS = (/^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0').split(',').flatMap((range) => {
  const [first, last = first] = range.split('-').map(Number) as [number, number?];
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
});

/**
 * The proxies measured on the last CPU, alone; the runner (and so wrk, which it starts) and
 * the upstream on the others. On this machine's two cores, shared by the load generator,
 * the upstream and the proxy, a proxy's CPU per request moved by a third from round to
 * round with how the three happened to be scheduled; each on cores of its own, it moves
 * far less, and a proxy's CPU per request is the inverse of its rate.
 */
function pinApart(proxies: number[], upstream: number): void {
  for (const pid of proxies) taskset(CPUS.slice(-1), pid);
  for (const pid of [process.pid, upstream]) taskset(CPUS.slice(0, -1), pid);
}

function unpin(upstream: number): void {
  for (const pid of [process.pid, upstream]) taskset(CPUS, pid);
}

/** Every thread of the process on these CPUs (threads started later inherit it). */
function taskset(cpus: number[], pid: number): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus.join(','), String(pid)], { stdio: 'ignore' });
}

/** A path's figures: at saturation its round with the median rate, CPU per request over all rounds. */
function httpResult(spec: PathSpec, saturation: Measured, fixed: Measured): HttpResult {
  const requests = saturation.rounds.reduce((n, r) => n + r.requests, 0);
  const byRate = [...saturation.rounds].sort((a, b) => a.rps - b.rps);
  return {
    id: spec.id,
    title: spec.title,
    wrk: byRate[Math.floor(byRate.length / 2)]!,
    saturation: saturation.rounds,
    cpuPer10k: saturation.cpuSeconds === undefined ? undefined : (saturation.cpuSeconds / requests) * 10000,
    rssBytes: saturation.rssBytes,
    fixed: { rate: RATE, rounds: fixed.rounds, cpuSeconds: fixed.cpuSeconds },
  };
}

/** The sidecar's JS heap in use, from its own metrics (how much of the RSS is JS objects). */
async function heapUsed(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  if (!m) throw new Error('no heap metric');
  return Number(m[1]);
}

/**
 * The sidecar's CPU per /metrics scrape, over 300 in a row after 30 to warm up (the CPU
 * clock ticks every 10 ms): a scrape that walked every connection or descriptor held up
 * every request for as long (docs/metrics.md, "Process").
 */
async function scrapeMicros(adminUrl: string, pid: number): Promise<number> {
  const scrape = async () => void (await (await fetch(`${adminUrl}/metrics`)).text());
  for (let i = 0; i < 30; i++) await scrape();
  const scrapes = 300;
  const before = cpuSeconds(pid);
  for (let i = 0; i < scrapes; i++) await scrape();
  return ((cpuSeconds(pid) - before) / scrapes) * 1e6;
}

async function withPath<T>(path: PathSpec, upstreamPort: number, use: (running: RunningPath) => Promise<T>): Promise<T> {
  const running = await path.start(upstreamPort);
  try {
    return await use(running);
  } finally {
    await running.stop();
  }
}

/** RSS, descriptors and (for the sidecar) JS heap and CPU per scrape of a relay before and after `count` idle WebSockets. */
async function idleCost(running: RunningPath, count: number): Promise<IdleCost> {
  const pid = running.pids()[0]!;
  const { adminUrl } = running;
  const heap = async () => (adminUrl ? heapUsed(adminUrl) : 0);
  const scrape = async () => (adminUrl ? { scrapeUs: await scrapeMicros(adminUrl, pid) } : {});
  await echo(running.url.replace('http', 'ws'), 4, 64, 0.5); // warm the upgrade path
  const before = { rss: rssBytes(pid), fds: openFds(pid), heap: await heap(), ...(await scrape()) };
  const idle = await openIdle(running.url.replace('http', 'ws'), count);
  await sleep(1000);
  const after = { rss: rssBytes(pid), fds: openFds(pid), heap: await heap(), ...(await scrape()) };
  await idle.close();
  if (idle.failed > 0) throw new Error(`${idle.failed} WebSockets failed to open`);
  await sleep(500);
  return { count: idle.opened, before, after };
}

/** The trusted-set benchmark (its own script), run in a fresh process; lookups/s by probe mix. */
async function trustedSetLookups(): Promise<Record<string, number>> {
  const { stdout } = await run(process.execPath, [TRUSTED_SET, ...(quick ? ['--quick'] : [])], { env: imageEnv(), timeout: 120000 });
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/^\s*lookup (.+?)\s+([\d,]+) lookups\/s$/gm)) out[m[1]!] = Number(m[2]!.replace(/,/g, ''));
  if (Object.keys(out).length === 0) throw new Error(`trusted-set benchmark printed no lookups:\n${stdout}`);
  return out;
}

// The micro-benchmarks run in three rounds spread over the run (first, after the HTTP
// phases, last), so a slow spell of the shared machine moves one round, not the median.
const microRounds: MicroRound[] = [];
async function micro(round: number): Promise<void> {
  if (!wanted('micro')) return;
  log(`micro-benchmarks, round ${round} of 3`);
  microRounds.push({
    decisions: decisions(T.micro).perSecond,
    signs: signs(T.micro).perSecond,
    signsByAlgorithm: { EdDSA: signs(T.micro, 'EdDSA').perSecond, ES256: signs(T.micro, 'ES256').perSecond },
    limits: limitsBookkeeping(T.micro).perSecond,
    lookups: await trustedSetLookups(),
  });
}

async function main(): Promise<void> {
  const results: Results = {
    startedAt: new Date().toISOString(),
    quick,
    connections: CONNECTIONS,
    seconds: T.wrk,
    rounds: T.wrkRounds,
    loadBefore: loadavg(),
    http: [],
    alternatives: [],
  };
  const { child: upstream, port: upstreamPort } = await forkChild(UPSTREAM, []);
  try {
    await micro(1);
    const specs = [...PATHS, ...ALTERNATIVES].filter((p) => wanted(p.id));
    if (specs.length > 0) {
      const saturated = await inRounds(
        'saturation',
        specs,
        (path, seconds) => wrk(path.url, seconds, CONNECTIONS, undefined, path.credential),
        { warm: T.warm, rounds: T.wrkRounds, seconds: T.wrk },
        upstreamPort,
        upstream,
      );
      const fixed = await inRounds(
        `${RATE} req/s`,
        specs,
        (path, seconds) => fixedRate(path.url, RATE, seconds, path.credential),
        { warm: 1, rounds: T.rateRounds, seconds: T.rateSeconds },
        upstreamPort,
        upstream,
      );
      specs.forEach((spec, i) => (PATHS.includes(spec) ? results.http : results.alternatives).push(httpResult(spec, saturated[i]!, fixed[i]!)));
    }
    if (wanted(BARE.id) && wanted(INLINE.id)) {
      if (CPUS.length < 2) log('one CPU: what the checks add is measured with the proxies sharing it');
      else {
        const pair = [BARE, INLINE];
        const [bare, inline] = await inRounds(
          'saturation, each alone on a core',
          pair,
          (path, seconds) => wrk(path.url, seconds, CONNECTIONS),
          { warm: T.warm, rounds: T.pinnedRounds, seconds: T.pinnedSeconds, pinned: true },
          upstreamPort,
          upstream,
        );
        const us = (m: Measured, i: number) => (m.roundCpuSeconds[i]! / m.rounds[i]!.requests) * 1e6;
        results.pinned = { seconds: T.pinnedSeconds, pairs: bare!.rounds.map((_, i) => ({ bareUs: us(bare!, i), sidecarUs: us(inline!, i) })) };
      }
    }

    await micro(2);
    if (wanted('websockets')) {
      // As many as the sidecar itself accepts under this descriptor and memory limit, its
      // listen config left at the defaults (it closes any more at accept).
      const idleCount = Math.min(T.wsIdle, defaultMaxConnections(configSchema.parse({}).listen));
      log(`WebSockets: ${idleCount} idle through each relay (open file limit ${openFileLimit()})`);
      const idle = await withPath(INLINE, upstreamPort, (running) => idleCost(running, idleCount));
      const floors: Record<string, IdleCost> = {};
      for (const path of [BARE, NODE_RELAY]) floors[path.title] = await withPath(path, upstreamPort, (running) => idleCost(running, idleCount));
      // Every relay started afresh and warmed alike, then measured in rounds, one after the
      // other as the HTTP paths are, so a slow spell of the shared machine lands in one round
      // of one relay (a single run each, the sidecar's right after it had held the idle
      // WebSockets, had put it 22 % below the same relay code bare).
      log(`WebSockets: echo direct, through the sidecar, the bare forwarders and nginx (${T.echoRounds} rounds)`);
      const echoOf = (url: string, seconds: number) => echo(url.replace('http', 'ws'), ECHO.connections, ECHO.messageBytes, seconds);
      const relays = [INLINE, BARE, NODE_RELAY, NGINX];
      const started: RunningPath[] = [];
      try {
        for (const path of relays) started.push(await path.start(upstreamPort));
        const urls = [`http://127.0.0.1:${upstreamPort}`, ...started.map((running) => running.url)];
        for (const url of urls) await echoOf(url, 1);
        const rounds: EchoResult[][] = urls.map(() => []);
        for (let round = 0; round < T.echoRounds; round++) for (const [i, url] of urls.entries()) rounds[i]!.push(await echoOf(url, T.echo));
        const [direct, viaSidecar, ...others] = rounds as [EchoResult[], EchoResult[], ...EchoResult[][]];
        const byTitle = Object.fromEntries(others.map((r, i) => [relays[i + 1]!.title, r]));
        results.websockets = {
          idle: { ...idle, wanted: T.wsIdle, fileLimit: openFileLimit() },
          floors,
          echo: { direct, sidecar: viaSidecar, others: byTitle, ...ECHO },
        };
      } finally {
        for (const running of started) await running.stop();
      }
    }

    await micro(3);
    if (microRounds.length > 0) results.micro = { rounds: microRounds };
    if (wanted('coldstart')) {
      log('cold starts');
      const starts = await coldStarts(upstreamPort, T.coldRuns);
      results.coldStart = starts.bundle;
      results.coldStartUnbundled = starts.unbundled;
      results.idleFloor = await idleFloor(upstreamPort, T.coldRuns);
      results.imports = importCosts(
        ['./dist/server/sidecar.js', '@kubernetes/client-node', './dist/metrics/prom-client.js', './dist/config/zod.js', 'pino', 'yaml', 'undici'],
        quick ? 1 : 3,
      );
    }
    if (wanted('profile')) {
      log('CPU profile of the sidecar inline at saturation');
      results.profile = await profileInline(upstreamPort, quick ? 3 : 10, cpuSeconds);
      log('allocation profile of the sidecar inline at saturation');
      results.allocations = await allocationsInline(upstreamPort, quick ? 3 : 8);
    }
    if (wanted('kubernetes')) results.kubernetes = await kubeScale(T.kube, upstreamPort, log);
  } finally {
    await stopChild(upstream);
    await cleanup();
  }
  results.loadAfter = loadavg();
  results.minutes = (performance.now() - began) / 60000;
  const out = quick ? new URL('../../bench-quick/', import.meta.url).pathname : REPORT_DIR;
  mkdirSync(out, { recursive: true });
  // The raw figures and the targets judged from them stay out of the repository, beside the compiled benchmark.
  writeFileSync(
    new URL(quick ? '../../bench-quick.json' : '../../bench-results.json', import.meta.url),
    JSON.stringify({ ...results, targets: targets(results) }, null, 2),
  );
  try {
    await writeReport(results, out);
  } finally {
    await cleanup(); // the chart's temp folder
  }
  log(`wrote ${out}performance.md`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await cleanup();
  process.exitCode = 1;
});
