// The targets, as data: each a figure from the run, the bound it is held to, and what bounds it
// (the best reached without the sidecar's work, in the same run). The report prints them and
// the quick benchmark test reads them from the results file.
import { NGINX } from './paths.js';
import {
  type Fixed,
  MB,
  addedByChecks,
  echoRate,
  echoRatio,
  f,
  int,
  lowest,
  median,
  microFigure,
  p99,
  perRound,
  requiredWork,
  roundList,
  wsTotalAt,
} from './figures.js';
import { type HttpResult, type Results } from './results.js';

export interface Target {
  /** Stable: the quick benchmark test and other readers of the results find a target by it. */
  id: string;
  name: string;
  /** The figure the target judges, in its bound's unit. */
  value: number;
  /** Met when value ≤ bound, or value ≥ bound. */
  op: '≤' | '≥';
  bound: number;
  /** The bound as the report prints it. */
  goal: string;
  /** The figure with what it was made from, as the report prints it. */
  measured: string;
  met: boolean;
  /** What bounds the target, measured in the same run (the best reached without the sidecar's work): its figure, in the target's unit, and its words. */
  limit?: { value: number; text: string };
}

/** A target from its figure and bound: `met` follows from them. */
function target(id: string, name: string, value: number, op: Target['op'], bound: number, goal: string, measured: string, limit?: Target['limit']): Target {
  return { id, name, value, op, bound, goal, measured, met: op === '≤' ? value <= bound : value >= bound, ...(limit && { limit }) };
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
    out.push(
      target(
        'inline-vs-bare',
        `Inline throughput vs bare forwarder (median of ${ratio.rounds.length} rounds)`,
        ratio.median,
        '≥',
        0.9,
        '≥ 0.90×',
        `${f(ratio.median)}× (rounds: ${roundList(ratio.rounds, 2)})`,
        bareUs === undefined || decisionUs === undefined
          ? undefined
          : {
              value: bareUs / (bareUs + decisionUs),
              text: `at most ${f(bareUs / (bareUs + decisionUs))}× with nothing added but the required work: ${f(bareUs, 0)} µs per request bare + ${f(decisionUs, 1)} µs for \`decide()\` and \`upstreamHeaders()\` ${atSaturation === undefined ? 'hot in a loop' : 'at saturation'}`,
            },
      ),
    );
  }
  // The proxies a user would otherwise put in front, each doing real authentication work per request too.
  for (const [id, peer] of [
    ['oauth2-proxy', 'oauth2-proxy with a valid session'],
    ['kube-rbac-proxy', 'kube-rbac-proxy with a valid token'],
  ] as const) {
    const other = by(id);
    if (!inline || !other) continue;
    const ratio = perRound(inline.saturation, other.saturation, (a, b) => a.rps / b.rps);
    out.push(
      target(
        `inline-vs-${id}`,
        `Inline throughput vs ${peer} (median of ${ratio.rounds.length} rounds)`,
        ratio.median,
        '≥',
        1,
        '≥ 1.0×',
        `${f(ratio.median)}× (rounds: ${roundList(ratio.rounds, 2)})`,
      ),
    );
    if (inline.cpuPer10k !== undefined && other.cpuPer10k !== undefined) {
      const cpu = inline.cpuPer10k / other.cpuPer10k;
      out.push(
        target(
          `cpu-vs-${id}`,
          `Sidecar CPU per request vs ${peer}`,
          cpu,
          '≤',
          1,
          '≤ 1.0×',
          `${f(cpu)}× (${f(inline.cpuPer10k * 100, 0)} vs ${f(other.cpuPer10k * 100, 0)} µs)`,
        ),
      );
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
    const requiredUs = saturationUs ?? loopUs;
    out.push(
      target(
        'checks-added',
        'What the checks, signing and metrics add to the data plane checking nothing (CPU per request)',
        added * 100,
        '≤',
        10,
        '≤ 10 %',
        `${f(added * 100, 0)} % (${how}${f(sidecarUs, 0)} vs ${f(bareUs, 0)} µs${rounds})`,
        requiredUs === undefined
          ? undefined
          : { value: (requiredUs / bareUs) * 100, text: `\`decide()\` and \`upstreamHeaders()\` alone: ${figures.join('; ')}` },
      ),
    );
  }
  if (inline?.cpuPer10k !== undefined && nginx?.cpuPer10k !== undefined) {
    const ratio = inline.cpuPer10k / nginx.cpuPer10k;
    const cheapest = lowest(
      forwarders.filter((h) => h.cpuPer10k !== undefined),
      (h) => h.cpuPer10k! / nginx.cpuPer10k!,
    );
    out.push(
      target(
        'cpu-vs-nginx',
        'Sidecar CPU per request vs nginx proxy_pass',
        ratio,
        '≤',
        2,
        '≤ 2.0×',
        `${f(ratio)}× (${f(inline.cpuPer10k, 3)} vs ${f(nginx.cpuPer10k, 3)} CPU s / 10k req)`,
        cheapest && { value: cheapest.value, text: `the cheapest Node forwarder, checking nothing: ${f(cheapest.value)}× (${cheapest.item.title})` },
      ),
    );
  }
  const fixedTwoHop = twoHop.map((h) => h.fixed).filter((x): x is Fixed => x !== undefined);
  if (inline?.fixed && fixedTwoHop.length === twoHop.length && twoHop.length > 0) {
    // The better two-hop set-up of each round: the one with the lower p99 in that round.
    const rounds = inline.fixed.rounds.map((r, i) => p99(r) / Math.min(...fixedTwoHop.map((h) => p99(h.rounds[i]!))));
    const ratio = median(rounds);
    out.push(
      target(
        'p99-vs-two-hop-fixed',
        `Inline p99 vs the better two-hop set-up, at ${inline.fixed.rate} req/s (median of ${rounds.length} rounds)`,
        ratio,
        '≤',
        1.2,
        '≤ 1.2×',
        `${f(ratio)}× (rounds: ${roundList(rounds, 2)})`,
      ),
    );
  }
  if (inline && twoHop.length > 0) {
    const best = Math.min(...twoHop.map((h) => h.wrk.percentiles['99']!));
    const ratio = inline.wrk.percentiles['99']! / best;
    out.push(
      target(
        'p99-vs-two-hop-saturation',
        'Inline p99 vs the better two-hop set-up, at saturation',
        ratio,
        '≤',
        1.2,
        '≤ 1.2×',
        `${f(ratio)}× (${f(inline.wrk.percentiles['99'], 3)} vs ${f(best, 3)} ms)`,
      ),
    );
  }
  if (inline?.fixed && direct?.fixed) {
    const added = perRound(inline.fixed.rounds, direct.fixed.rounds, (a, b) => p99(a) - p99(b));
    out.push(
      target(
        'added-p99',
        `Added p99 latency over direct at ${inline.fixed.rate} req/s (median of ${added.rounds.length} rounds)`,
        added.median,
        '≤',
        1,
        '≤ 1 ms',
        `${f(added.median, 3)} ms (rounds: ${roundList(added.rounds, 3)})`,
        addedLimit(forwarders, nginx, direct.fixed),
      ),
    );
  }
  if (r.websockets) {
    const { idle, echo } = r.websockets;
    const total = wsTotalAt(r.websockets.idle, idle.wanted);
    const held =
      idle.count < idle.wanted
        ? ` (${int(idle.count)} held, the most the sidecar accepts here, open file limit ${idle.fileLimit}; ${int(idle.wanted)} at the measured cost per connection)`
        : '';
    const leanest = lowest(Object.entries(r.websockets.floors), ([, cost]) => wsTotalAt(cost, idle.wanted));
    out.push(
      target(
        'idle-websockets-rss',
        `${int(idle.wanted)} idle WebSockets through the sidecar, total RSS`,
        total / MB,
        '≤',
        200,
        '≤ 200 MB',
        `${f(total / MB, 1)} MB${held}`,
        leanest && { value: leanest.value / MB, text: `the leanest Node relay, checking nothing: ${f(leanest.value / MB, 1)} MB (${leanest.item[0]})` },
      ),
    );
    const relay = echo.others[NGINX.title];
    if (relay) {
      const ratio = echoRatio(echo.sidecar, relay);
      const [fastest] = Object.entries(echo.others)
        .filter(([title]) => title !== NGINX.title)
        .map(([title, rounds]) => ({ title, ratio: echoRatio(rounds, relay).median }))
        .sort((a, b) => b.ratio - a.ratio);
      out.push(
        target(
          'echo-vs-nginx',
          `WebSocket echo throughput vs nginx's relay (median of ${ratio.rounds.length} rounds)`,
          ratio.median,
          '≥',
          0.8,
          '≥ 0.80×',
          `${f(ratio.median)}× (rounds: ${roundList(ratio.rounds, 2)}; ${int(echoRate(echo.sidecar))} vs ${int(echoRate(relay))} round trips/s; direct ${int(echoRate(echo.direct))})`,
          fastest && { value: fastest.ratio, text: `the fastest Node relay, checking nothing: ${f(fastest.ratio)}× (${fastest.title})` },
        ),
      );
    }
  }
  if (r.micro) {
    const { rounds } = r.micro;
    const signs = microFigure(rounds, (m) => m.signs);
    out.push(
      target(
        'signs-per-second',
        `Assertion signs per second (one core, median of ${rounds.length} rounds)`,
        signs.median,
        '≥',
        200_000,
        '≥ 200,000',
        `${int(signs.median)} (rounds: ${signs.rounds.map(int).join(', ')})`,
      ),
    );
    const sidecarUs = inline?.cpuPer10k === undefined ? undefined : inline.cpuPer10k * 100;
    if (sidecarUs !== undefined && rounds.every((m) => m.limits !== undefined)) {
      const limitsUs = 1e6 / microFigure(rounds, (m) => m.limits!).median;
      const share = limitsUs / sidecarUs;
      out.push(
        target(
          'limits-share',
          "The limits' bookkeeping per inline request, as a share of the sidecar's CPU per request",
          share * 100,
          '≤',
          3,
          '≤ 3 %',
          `${f(share * 100, 1)} % (${f(limitsUs, 2)} of ${f(sidecarUs, 0)} µs)`,
        ),
      );
    }
    const lookups = Object.keys(rounds[0]!.lookups).map((mix) => [mix, microFigure(rounds, (m) => m.lookups[mix]!).median] as const);
    const slowest = Math.min(...lookups.map(([, n]) => n));
    out.push(
      target(
        'lookups-per-second',
        `Trusted-set lookups per second, 5,000 CIDRs (one core, slowest probe mix, median of ${rounds.length} rounds)`,
        slowest,
        '≥',
        5e6,
        '≥ 5,000,000',
        lookups.map(([k, n]) => `${k} ${int(n)}`).join('; '),
      ),
    );
  }
  if (r.coldStart) {
    const ready = median(r.coldStart.readyMs);
    const rss = median(r.coldStart.idleRssBytes);
    out.push(target('cold-start', 'Cold start to ready, no discovery (median)', ready, '≤', 300, '≤ 300 ms', `${f(ready, 0)} ms`));
    const floor = r.idleFloor;
    const node = r.imports?.find((i) => i.module.startsWith('('));
    // The file-backed part is mostly the Node executable's own pages: what no change to the sidecar's code moves.
    const files = (sidecar: number[], of: number[]) =>
      `; of these, pages of the Node executable and its libraries (file-backed): ${f(median(sidecar) / MB, 1)} MB of the sidecar's, ${f(median(of) / MB, 1)} of the floor's`;
    out.push(
      target(
        'idle-rss',
        'Idle RSS (median)',
        rss / MB,
        '≤',
        60,
        '≤ 60 MB',
        `${f(rss / MB, 1)} MB`,
        floor && {
          value: median(floor.rssBytes) / MB,
          text: `Node with the built-ins and dependencies the sidecar loads, each used once, none of its own code: ${f(median(floor.rssBytes) / MB, 1)} MB${node ? ` (Node alone ${f(node.rssBytes / MB, 1)})` : ''}${files(r.coldStart.idleFileBytes, floor.fileBytes)}`,
        },
      ),
    );
  }
  return out;
}

/** The least p99 any Node forwarder adds at the fixed rate, checking nothing; nginx's beside it. */
export function addedLimit(forwarders: HttpResult[], nginx: HttpResult | undefined, direct: Fixed): Target['limit'] {
  const added = (h: HttpResult) => perRound(h.fixed!.rounds, direct.rounds, (a, b) => p99(a) - p99(b)).median;
  const least = lowest(
    forwarders.filter((h) => h.fixed !== undefined),
    added,
  );
  if (!least) return undefined;
  const beside = nginx?.fixed ? `; ${nginx.title} adds ${f(added(nginx), 3)} ms` : '';
  return { value: least.value, text: `the least any Node forwarder adds, checking nothing: ${f(least.value, 3)} ms (${least.item.title})${beside}` };
}
