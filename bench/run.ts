// `make bench`: every path to one upstream, measured in one run on this machine, then
// written up as reports/performance.md and a latency chart. `--quick` shortens every
// phase for trying the benchmark out (its numbers are not for the report).
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { coldStarts } from './coldstart.js';
import { fixedRate, percentile, wrk, IDENTITY_HEADERS } from './load.js';
import { decisions, signs } from './micro.js';
import { ALTERNATIVES, forkChild, PATHS, INLINE, type PathSpec } from './paths.js';
import { cleanup, cleanupSync, cpuSeconds, openFds, openFileLimit, rssBytes, stopChild } from './procs.js';
import { writeReport, type HttpResult, type Results } from './report.js';
import { cleanEnv } from './sidecar.js';
import { echo, openIdle } from './ws.js';

const quick = process.argv.includes('--quick');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const T = quick
  ? { warm: 1, wrk: 3, rateSeconds: 2, wsIdle: 1000, echo: 2, micro: 0.5, coldRuns: 2 }
  : { warm: 2, wrk: 8, rateSeconds: 5, wsIdle: 10000, echo: 5, micro: 2, coldRuns: 5 };
const CONNECTIONS = 50;
const RATE = 2000;
const REPORT_DIR = new URL('../../../reports/', import.meta.url).pathname;
const UPSTREAM = new URL('./upstream.js', import.meta.url).pathname;
const TRUSTED_SET = new URL('./trusted-set.bench.js', import.meta.url).pathname;
const run = promisify(execFile);

process.once('SIGINT', () => {
  cleanupSync();
  process.exit(130);
});

function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

function sum(pids: number[], f: (pid: number) => number): number {
  return pids.reduce((n, pid) => n + f(pid), 0);
}

async function lastReceived(upstream: ChildProcess): Promise<{ rawHeaders: string[] } | undefined> {
  const answer = new Promise<{ received?: { rawHeaders: string[] } }>((resolve) => upstream.once('message', (m) => resolve(m as never)));
  upstream.send({ type: 'last' });
  return (await answer).received;
}

/** One request through the path, checked at the upstream: signed paths must deliver an assertion. */
async function check(path: PathSpec, url: string, upstream: ChildProcess): Promise<void> {
  const res = await fetch(`${url}/api/v1/sessions?limit=20`, { headers: IDENTITY_HEADERS });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${path.title}: status ${res.status}`);
  const got = await lastReceived(upstream);
  const names = new Set((got?.rawHeaders ?? []).filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()));
  if (path.signed && !names.has('x-trusted-proxy-assertion')) throw new Error(`${path.title}: the upstream got no assertion`);
}

async function measureHttp(path: PathSpec, upstreamPort: number, upstream: ChildProcess): Promise<HttpResult> {
  log(`${path.title}: starting`);
  const running = await path.start(upstreamPort);
  try {
    await check(path, running.url, upstream);
    await wrk(running.url, T.warm, CONNECTIONS);
    const pids = running.pids();
    const cpuBefore = sum(pids, cpuSeconds);
    const load = await wrk(running.url, T.wrk, CONNECTIONS);
    const cpu = sum(pids, cpuSeconds) - cpuBefore;
    const rss = sum(pids, rssBytes);
    if (load.errors > 0 || load.non2xx > 0) throw new Error(`${path.title}: ${load.errors} errors, ${load.non2xx} non-2xx under load`);
    await sleep(500);
    const rate = await fixedRate(running.url, RATE, T.rateSeconds);
    if (rate.failed > 0) throw new Error(`${path.title}: ${rate.failed} failed at ${RATE} req/s`);
    log(`${path.title}: ${load.rps.toFixed(0)} req/s, p99 ${load.percentiles['99']!.toFixed(2)} ms; at ${RATE}/s p99 ${percentile(rate.latencies, 99).toFixed(3)} ms`);
    return {
      id: path.id,
      title: path.title,
      wrk: load,
      cpuPer10k: pids.length > 0 ? (cpu / load.requests) * 10000 : undefined,
      rssBytes: pids.length > 0 ? rss : undefined,
      fixed: {
        rate: RATE,
        count: rate.completed,
        percentiles: Object.fromEntries([50, 90, 99, 99.9].map((p) => [String(p), percentile(rate.latencies, p)])),
        distribution: Array.from({ length: 200 }, (_, i) => percentile(rate.latencies, ((i + 1) / 200) * 100)),
      },
    };
  } finally {
    await running.stop();
  }
}

/** The trusted-set benchmark (its own script), run in a fresh process; lookups/s by probe mix. */
async function trustedSetLookups(): Promise<Record<string, number>> {
  const { stdout } = await run(process.execPath, [TRUSTED_SET, ...(quick ? ['--quick'] : [])], { env: cleanEnv(), timeout: 120000 });
  const out: Record<string, number> = {};
  for (const m of stdout.matchAll(/^\s*lookup (.+?)\s+([\d,]+) lookups\/s$/gm)) out[m[1]!] = Number(m[2]!.replace(/,/g, ''));
  if (Object.keys(out).length === 0) throw new Error(`trusted-set benchmark printed no lookups:\n${stdout}`);
  return out;
}

async function main(): Promise<void> {
  const results: Results = { startedAt: new Date().toISOString(), quick, loadBefore: loadavg(), http: [], alternatives: [] };
  const { child: upstream, port: upstreamPort } = await forkChild(UPSTREAM, []);
  const wanted = (id: string) => only === undefined || only.includes(id);
  try {
    for (const path of PATHS) if (wanted(path.id)) results.http.push(await measureHttp(path, upstreamPort, upstream));
    for (const path of ALTERNATIVES) if (wanted(path.id)) results.alternatives.push(await measureHttp(path, upstreamPort, upstream));

    if (wanted('websockets')) {
      // Two descriptors per proxied WebSocket (client and gateway side), plus headroom.
      const idleCount = Math.min(T.wsIdle, Math.floor((openFileLimit() - 200) / 2));
      log(`WebSockets: ${idleCount} idle through the sidecar (open file limit ${openFileLimit()})`);
      const sidecar = await INLINE.start(upstreamPort);
      try {
        const pid = sidecar.sidecarPid!;
        await echo(sidecar.url.replace('http', 'ws'), 4, 64, 0.5); // warm the upgrade path
        const before = { rss: rssBytes(pid), fds: openFds(pid) };
        const idle = await openIdle(sidecar.url.replace('http', 'ws'), idleCount);
        await sleep(1000);
        const after = { rss: rssBytes(pid), fds: openFds(pid) };
        await idle.close();
        if (idle.failed > 0) throw new Error(`${idle.failed} WebSockets failed to open`);
        await sleep(500);
        log('WebSockets: echo through the sidecar and direct');
        const viaSidecar = await echo(sidecar.url.replace('http', 'ws'), 32, 1024, T.echo);
        const direct = await echo(`ws://127.0.0.1:${upstreamPort}`, 32, 1024, T.echo);
        results.websockets = { idle: { count: idle.opened, wanted: T.wsIdle, fileLimit: openFileLimit(), before, after }, echo: { direct, sidecar: viaSidecar, connections: 32, messageBytes: 1024 } };
      } finally {
        await sidecar.stop();
      }
    }

    if (wanted('micro')) {
      log('micro-benchmarks');
      results.micro = { decisions: decisions(T.micro), signs: signs(T.micro), lookups: await trustedSetLookups() };
    }
    if (wanted('coldstart')) {
      log('cold starts');
      results.coldStart = await coldStarts(upstreamPort, T.coldRuns);
    }
  } finally {
    await stopChild(upstream);
    await cleanup();
  }
  results.loadAfter = loadavg();
  mkdirSync(REPORT_DIR, { recursive: true });
  const out = quick ? new URL('../../bench-quick/', import.meta.url).pathname : REPORT_DIR;
  mkdirSync(out, { recursive: true });
  writeFileSync(`${out}/performance.json`, JSON.stringify(results, null, 2));
  await writeReport(results, out);
  log(`wrote ${out}performance.md`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await cleanup();
  process.exitCode = 1;
});
