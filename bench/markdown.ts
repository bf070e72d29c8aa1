// reports/performance.md: the targets, then every table of the run.
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import type { ColdStart } from './coldstart.js';
import type { KubeScaleResult } from './kube-scale.js';
import {
  DECISION_FRAMES,
  MB,
  echoRate,
  echoRatio,
  f,
  fixedP,
  inclusiveShare,
  int,
  median,
  microFigure,
  p99,
  perRound,
  pinnedCost,
  roundList,
  sharedCoresCost,
  sharesOf,
} from './figures.js';
import { type HttpResult, type MicroRound, type Results } from './results.js';
import { targets } from './targets.js';

export function httpTable(rows: HttpResult[], direct: HttpResult | undefined, nginx: HttpResult | undefined): string[] {
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

export function fixedTable(rows: HttpResult[], direct: HttpResult | undefined): string[] {
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

export function coldRows(label: string, c: ColdStart): string[] {
  return [
    `| spawn → /readyz 200${label} | ${f(median(c.readyMs), 0)} ms | ${c.readyMs.map((x) => x.toFixed(0)).join(', ')} |`,
    `| idle RSS after 2 s${label} | ${f(median(c.idleRssBytes) / MB, 1)} MB | ${c.idleRssBytes.map((x) => (x / MB).toFixed(1)).join(', ')} |`,
    `| of it, pages of the Node executable and its libraries (file-backed)${label} | ${f(median(c.idleFileBytes) / MB, 1)} MB | ${c.idleFileBytes.map((x) => (x / MB).toFixed(1)).join(', ')} |`,
  ];
}

export function versions(): string {
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

/** Both, in the saturation section. */
export function checksCost(r: Results): string[] {
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
    ...t.map((x) => `| ${x.name} | ${x.goal} | ${x.measured} | ${x.met ? 'yes' : '**no**'} | ${x.limit?.text ?? '—'} |`),
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
export function kubernetesSection(k: KubeScaleResult): string[] {
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
