// Figures read from a run's results, shared by the targets and the markdown: medians, per-round
// comparisons, the cost of the checks, the required work's share of the CPU profile.
import type { WrkResult } from './load.js';
import type { EchoResult } from './ws.js';
import { type FlameNode } from './cpu-profile.js';
import { type HttpResult, type IdleCost, type MicroRound, type Results } from './results.js';

export const MB = 1024 * 1024;
export const f = (n: number | undefined, digits = 2) => (n === undefined || Number.isNaN(n) ? '—' : n.toFixed(digits));
export const int = (n: number) => Math.round(n).toLocaleString('en-US');
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export type Fixed = NonNullable<HttpResult['fixed']>;
/** A fixed-rate percentile: the median over rounds. */
export const fixedP = (fixed: Fixed, p: string) => median(fixed.rounds.map((r) => r.percentiles[p]!));
/** A comparison of two paths, round by round (both measured within the round), then the median. */
export function perRound<R>(a: R[], b: R[], compare: (a: R, b: R) => number): { median: number; rounds: number[] } {
  const rounds = a.slice(0, b.length).map((r, i) => compare(r, b[i]!));
  return { median: median(rounds), rounds };
}
/** A relay's echo rate over the rounds, and its rate against another's round by round. */
export const echoRate = (rounds: EchoResult[]) => median(rounds.map((e) => e.perSecond));
export const echoRatio = (a: EchoResult[], b: EchoResult[]) => perRound(a, b, (x, y) => x.perSecond / y.perSecond);
export const p99 = (r: WrkResult) => r.percentiles['99']!;
/** A micro-benchmark's median over its rounds, and every round's figure. */
export function microFigure(rounds: MicroRound[], of: (round: MicroRound) => number): { median: number; rounds: number[] } {
  const values = rounds.map(of);
  return { median: median(values), rounds: values };
}
export const roundList = (xs: number[], digits: number) => xs.map((x) => f(x, digits)).join(', ');

/** The sidecar's RSS with `n` idle WebSockets, from the measured before/after cost. */
export function wsTotalAt(idle: IdleCost, n: number): number {
  if (idle.count >= n) return idle.after.rss;
  return idle.before.rss + ((idle.after.rss - idle.before.rss) / Math.max(1, idle.count)) * n;
}

/** The item with the lowest value, if any. */
export function lowest<T>(items: T[], value: (item: T) => number): { item: T; value: number } | undefined {
  let best: { item: T; value: number } | undefined;
  for (const item of items) {
    const v = value(item);
    if (best === undefined || v < best.value) best = { item, value: v };
  }
  return best;
}

/** The share of all samples spent in frames of one kind (self time). */
export function sharesOf(tree: FlameNode, kind: FlameNode['kind']): number {
  const self = (n: FlameNode): number =>
    (n.kind === kind ? n.total - n.children.reduce((a, c) => a + c.total, 0) : 0) + n.children.reduce((a, c) => a + self(c), 0);
  return self(tree) / Math.max(tree.total, 1);
}

/** The share of all samples spent in frames of these names and all they call (a frame inside another counted once). */
export function inclusiveShare(tree: FlameNode, names: readonly string[]): number {
  const under = (n: FlameNode): number => (names.includes(n.name) ? n.total : n.children.reduce((a, c) => a + under(c), 0));
  return under(tree) / Math.max(tree.total, 1);
}

/** The required work: the decision and the gateway's header lines, the frames the hot loop (micro.ts) runs. */
export const DECISION_FRAMES = ['decide src/decision/decide.ts', 'upstreamHeaders src/decision/gateway-headers.ts'];

/**
 * What the required work costs per request: at saturation, its share of the CPU profile's
 * samples (times a CPU per request of the sidecar, it is microseconds), where there is a
 * profile (in a loop it stays hot in the caches, which it is not between the writes of a
 * running sidecar); and hot in a loop.
 */
export function requiredWork(r: Results): { share: number | undefined; loopUs: number | undefined } {
  const loopUs = r.micro ? 1e6 / microFigure(r.micro.rounds, (m) => m.decisions).median : undefined;
  const share = r.profile ? inclusiveShare(r.profile.tree, DECISION_FRAMES) : undefined;
  return { share, loopUs };
}

/** What the checks, signing and metrics add to the bare forwarder's CPU per request. */
export interface ChecksCost {
  bareUs: number;
  sidecarUs: number;
  added: number;
  /** Each round's added share, where the figures come from rounds with each alone on a core. */
  rounds: number[] | undefined;
}

/** From the saturation rounds, with every path sharing the cores. */
export function sharedCoresCost(r: Results): ChecksCost | undefined {
  const bare = r.http.find((h) => h.id === 'forwarder-proxy-layer')?.cpuPer10k;
  const inline = r.http.find((h) => h.id === 'sidecar')?.cpuPer10k;
  if (bare === undefined || inline === undefined) return undefined;
  return { bareUs: bare * 100, sidecarUs: inline * 100, added: inline / bare - 1, rounds: undefined };
}

/** From the rounds with each alone on a core: the median of the rounds' ratios, and of each one's figures. */
export function pinnedCost(r: Results): ChecksCost | undefined {
  if (!r.pinned) return undefined;
  const rounds = r.pinned.pairs.map((p) => p.sidecarUs / p.bareUs - 1);
  return { bareUs: median(r.pinned.pairs.map((p) => p.bareUs)), sidecarUs: median(r.pinned.pairs.map((p) => p.sidecarUs)), added: median(rounds), rounds };
}

/** The target's figure: alone on a core where those rounds ran, else from the saturation rounds. */
export const addedByChecks = (r: Results) => pinnedCost(r) ?? sharedCoresCost(r);
