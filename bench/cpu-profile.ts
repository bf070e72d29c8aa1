// Where the sidecar's CPU goes on the inline path at saturation: the sidecar runs under
// wrk with V8's sampling profiler (--cpu-prof); the samples become a table of self time
// per function (as µs per request) and a flame graph (an SVG that the report renders).
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wrk } from './load.js';
import { tempDir } from './procs.js';
import { startSidecar } from './sidecar.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface V8Profile {
  nodes: ProfileNode[];
  samples: number[];
}

export interface SelfTime {
  name: string;
  /** Share of all samples. */
  share: number;
  /** That share of the CPU time of one request at the profiled rate. */
  microsPerRequest: number;
}

/** A call tree node: its frame, its own samples and its children's. */
export interface FlameNode {
  name: string;
  kind: 'sidecar' | 'dependency' | 'node' | 'vm';
  total: number;
  children: FlameNode[];
}

export interface CpuProfileResult {
  seconds: number;
  rps: number;
  /** Samples with the process busy (idle ones left out). */
  samples: number;
  /** CPU seconds per request over the profiled run (the sidecar process). */
  cpuMicrosPerRequest: number;
  top: SelfTime[];
  tree: FlameNode;
}

/**
 * A bundle's module of each line: esbuild writes `// node_modules/<pkg>/…` or `// dist/…`
 * above each module it inlines, so a frame in dist/sidecar.js can be named by its package
 * or source file rather than a line of the bundle.
 */
const bundles = new Map<string, { lines: number[]; modules: string[] }>();
function moduleAt(url: string, line: number): string | undefined {
  if (!url.startsWith('file://')) return undefined;
  let index = bundles.get(url);
  if (!index) {
    index = { lines: [], modules: [] };
    try {
      readFileSync(new URL(url), 'utf8')
        .split('\n')
        .forEach((text, i) => {
          const m = /^\/\/ ((?:node_modules|dist)\/\S+\.[cm]?js)$/.exec(text);
          if (m) {
            index!.lines.push(i);
            index!.modules.push(m[1]!);
          }
        });
    } catch {
      /* not readable: named by line */
    }
    bundles.set(url, index);
  }
  let lo = 0;
  let hi = index.lines.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (index.lines[mid]! <= line) lo = mid + 1;
    else hi = mid - 1;
  }
  return hi >= 0 ? index.modules[hi] : undefined;
}

/** A short, stable name for a frame: the function and where it lives (a package, a sidecar file, or Node). */
export function frameName(frame: ProfileNode['callFrame']): { name: string; kind: FlameNode['kind'] } {
  const fn = frame.functionName || '(anonymous)';
  const url = frame.url;
  if (url === '') return { name: fn, kind: 'vm' };
  if (url.startsWith('node:')) return { name: `${fn} ${url}`, kind: 'node' };
  const where = moduleAt(url, frame.lineNumber) ?? url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (pkg) return { name: `${fn} (${pkg[1]})`, kind: 'dependency' };
  return {
    name: `${fn} ${where
      .replace(/^.*\/dist\//, 'dist/')
      .replace(/^dist\//, 'src/')
      .replace(/\.js$/, '.ts')}`,
    kind: 'sidecar',
  };
}

/** A process to profile, started with the profiler's Node flags. */
export type ProfiledStart = (nodeArgs: readonly string[]) => Promise<{ port: number; pid: number; stop(): Promise<void> }>;

export async function profileUnderLoad(
  start: ProfiledStart,
  seconds: number,
  cpuSecondsOf: (pid: number) => number,
): Promise<CpuProfileResult & { file: string }> {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-cpu-profile-')));
  const proc = await start(['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  let rps: number;
  let cpu: number;
  try {
    await wrk(`http://127.0.0.1:${proc.port}`, 2, 50);
    const before = cpuSecondsOf(proc.pid);
    const result = await wrk(`http://127.0.0.1:${proc.port}`, seconds, 50);
    cpu = cpuSecondsOf(proc.pid) - before;
    rps = result.rps;
  } finally {
    await proc.stop();
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('the profiled process wrote no CPU profile');
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as V8Profile;
  const cpuMicrosPerRequest = (cpu / (rps * seconds)) * 1e6;
  const summary = summarise(profile, cpuMicrosPerRequest);
  return { seconds, rps, samples: summary.tree.total, cpuMicrosPerRequest, ...summary, file: join(dir, file) };
}

/** The sidecar inline, as the benchmark runs it. */
export function profileInline(upstreamPort: number, seconds: number, cpuSecondsOf: (pid: number) => number): Promise<CpuProfileResult> {
  const start: ProfiledStart = async (nodeArgs) => {
    const sidecar = await startSidecar(upstreamPort, nodeArgs);
    return { port: sidecar.port, pid: sidecar.child.pid!, stop: () => sidecar.stop() };
  };
  return profileUnderLoad(start, seconds, cpuSecondsOf).then(({ file: _file, ...result }) => result);
}

/** Self time per function, and the call tree with each node's total samples (frames merged by name). */
export function summarise(profile: V8Profile, cpuMicrosPerRequest: number): { top: SelfTime[]; tree: FlameNode } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Idle samples are time the process waited: not part of any request's CPU.
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  const busy = profile.samples.filter((id) => !idle.has(id));
  const hits = new Map<number, number>();
  for (const id of busy) hits.set(id, (hits.get(id) ?? 0) + 1);
  const total = busy.length;
  const self = new Map<string, number>();
  const build = (node: ProfileNode): FlameNode => {
    const { name, kind } = frameName(node.callFrame);
    const own = hits.get(node.id) ?? 0;
    if (own > 0) self.set(name, (self.get(name) ?? 0) + own);
    const merged = new Map<string, FlameNode>();
    for (const child of (node.children ?? []).map((id) => build(byId.get(id)!))) {
      const same = merged.get(child.name);
      if (same) mergeInto(same, child);
      else merged.set(child.name, child);
    }
    const children = [...merged.values()].filter((c) => c.total > 0).sort((a, b) => b.total - a.total);
    return { name, kind, total: own + children.reduce((n, c) => n + c.total, 0), children };
  };
  const tree = build(profile.nodes[0]!);
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20)
    .map(([name, n]) => ({ name, share: n / total, microsPerRequest: (n / total) * cpuMicrosPerRequest }));
  return { top, tree };
}

function mergeInto(into: FlameNode, from: FlameNode): void {
  into.total += from.total;
  for (const child of from.children) {
    const same = into.children.find((c) => c.name === child.name);
    if (same) mergeInto(same, child);
    else into.children.push(child);
  }
  into.children.sort((a, b) => b.total - a.total);
}

const COLOURS: Record<FlameNode['kind'], string> = { sidecar: '#e8743b', dependency: '#5b8ff9', node: '#9fc96a', vm: '#c8c8c8' };
const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** An icicle flame graph: the root on top, each frame as wide as its share of the samples. */
export function flameGraphSvg(tree: FlameNode, width = 1400, title = ''): { svg: string; width: number; height: number } {
  const row = 17;
  const top = 40;
  const rects: string[] = [];
  let depth = 0;
  const draw = (node: FlameNode, x: number, level: number, scale: number) => {
    const w = node.total * scale;
    if (w < 0.8) return;
    depth = Math.max(depth, level);
    const y = top + level * row;
    const label = w > 60 ? `<text x="${(x + 3).toFixed(1)}" y="${y + 12}" font-size="11">${escape(node.name.slice(0, Math.floor(w / 6.5)))}</text>` : '';
    rects.push(
      `<g><title>${escape(node.name)} (${node.total} samples)</title><rect x="${x.toFixed(1)}" y="${y}" width="${(w - 0.5).toFixed(1)}" height="${row - 1}" fill="${COLOURS[node.kind]}"/>${label}</g>`,
    );
    let cx = x;
    for (const child of node.children) {
      draw(child, cx, level + 1, scale);
      cx += child.total * scale;
    }
  };
  draw(tree, 10, 0, (width - 20) / Math.max(tree.total, 1));
  const height = top + (depth + 1) * row + 40;
  const legend = (Object.entries(COLOURS) as [FlameNode['kind'], string][])
    .map(
      ([kind, colour], i) =>
        `<rect x="${10 + i * 150}" y="${height - 26}" width="12" height="12" fill="${colour}"/><text x="${28 + i * 150}" y="${height - 16}" font-size="12">${{ sidecar: 'the sidecar', dependency: 'npm packages', node: 'Node (JS)', vm: 'V8 / native / GC' }[kind]}</text>`,
    )
    .join('');
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="24" font-size="15">${escape(title)}</text>`,
    ...rects,
    legend,
    '</svg>',
  ].join('\n');
  return { svg, width, height };
}
