// Cold start: from spawning the built command (the bundle users run) to the first 200 from /readyz (static
// trust, no discovery), then the idle RSS once it has settled.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { build } from 'esbuild';
import { httpOk, rssBytes, rssFileBytes, start, tempDir, until } from './procs.js';
import { imageEnv, MAIN, sidecarConfig } from './sidecar.js';

export interface ColdStart {
  readyMs: number[];
  idleRssBytes: number[];
  /** Of the idle RSS, the pages of mapped files (the Node executable, its libraries). */
  idleFileBytes: number[];
}

/** The same command unbundled: tsc's module tree, which the bundle is made from. */
export const UNBUNDLED = new URL('../../../dist/cli/main.js', import.meta.url).pathname;

/**
 * `runs` cold starts of the shipped bundle and, alternating with them, of the unbundled
 * module tree, to show what bundling saves.
 */
export async function coldStarts(upstreamPort: number, runs: number): Promise<{ bundle: ColdStart; unbundled: ColdStart }> {
  const bundle: ColdStart = { readyMs: [], idleRssBytes: [], idleFileBytes: [] };
  const unbundled: ColdStart = { readyMs: [], idleRssBytes: [], idleFileBytes: [] };
  for (let i = 0; i < runs; i++) {
    for (const [main, into] of [
      [MAIN, bundle],
      [UNBUNDLED, unbundled],
    ] as const) {
      const { path, adminPort } = await sidecarConfig(upstreamPort);
      const t0 = performance.now();
      const proc = start(process.execPath, [main, 'serve', '--config', path], { env: imageEnv() });
      try {
        await until('sidecar ready', () => httpOk(`http://127.0.0.1:${adminPort}/readyz`), 10000, 2);
        into.readyMs.push(performance.now() - t0);
        await sleep(2000);
        into.idleRssBytes.push(rssBytes(proc.pid));
        into.idleFileBytes.push(rssFileBytes(proc.pid));
      } finally {
        await proc.stop();
      }
    }
  }
  return { bundle, unbundled };
}

/** The floor program (idle-floor.ts), compiled by tsc beside this file. */
const FLOOR = new URL('./idle-floor.js', import.meta.url).pathname;
const BUNDLE_OPTIONS = new URL('../../../scripts/bundle-options.mjs', import.meta.url).pathname;

/**
 * The idle RSS of idle-floor.ts, bundled as the command is, `runs` times, read as the
 * sidecar's is: 2 s after its admin port first answers.
 */
export async function idleFloor(upstreamPort: number, runs: number): Promise<{ rssBytes: number[]; fileBytes: number[] }> {
  const { builtinsByRequire, common } = (await import(BUNDLE_OPTIONS)) as { builtinsByRequire: object; common: object };
  // .mjs: the sidecar's bundle is an ES module by its package.json; a .js file with none around
  // it would be parsed as CommonJS first, then again as a module (Node's syntax detection).
  const outfile = join(tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-floor-'))), 'floor.mjs');
  await build({ ...common, entryPoints: [FLOOR], outfile, plugins: [builtinsByRequire] } as Parameters<typeof build>[0]);
  const floor = { rssBytes: [] as number[], fileBytes: [] as number[] };
  for (let i = 0; i < runs; i++) {
    const { path, port, adminPort } = await sidecarConfig(upstreamPort);
    const proc = start(process.execPath, [outfile, path, String(port), String(adminPort)], { env: imageEnv() });
    try {
      await until('idle floor ready', () => httpOk(`http://127.0.0.1:${adminPort}/`), 10000, 2);
      await sleep(2000);
      floor.rssBytes.push(rssBytes(proc.pid));
      floor.fileBytes.push(rssFileBytes(proc.pid));
    } finally {
      await proc.stop();
    }
  }
  return floor;
}

export interface ImportCost {
  module: string;
  ms: number;
  rssBytes: number;
}

const ROOT = new URL('../../../', import.meta.url).pathname;

/**
 * What loading a module costs a fresh Node process (median of `runs`): where start-up time
 * and idle memory go. An empty entry is Node's own floor.
 */
export function importCosts(modules: readonly string[], runs: number): ImportCost[] {
  return ['', ...modules].map((module) => {
    const samples = Array.from({ length: runs }, () => {
      const code = `const t = performance.now(); ${module ? `await import(${JSON.stringify(module)});` : ''} process.stdout.write(JSON.stringify({ ms: performance.now() - t, rss: process.memoryUsage().rss }));`;
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, env: imageEnv(), encoding: 'utf8' });
      return JSON.parse(out) as { ms: number; rss: number };
    });
    const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return { module: module || '(nothing: Node itself)', ms: mid(samples.map((s) => s.ms)), rssBytes: mid(samples.map((s) => s.rss)) };
  });
}
