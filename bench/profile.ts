// `node .run/bench/bench/profile.js [seconds] [sidecar|proxy-layer|node-http|undici]`:
// runs the sidecar inline (or a bare forwarder) under wrk with --cpu-prof and prints the functions with the most self time (the .cpuprofile is kept
// for a flame graph in Chrome DevTools or speedscope).
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wrk } from './load.js';
import { forkChild } from './paths.js';
import { cleanup, stopChild } from './procs.js';
import { startSidecar } from './sidecar.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

const seconds = Number(process.argv[2] ?? 10);
const target = process.argv[3] ?? 'sidecar';
const dir = mkdtempSync(join(tmpdir(), 'tps-profile-'));
const { child: upstream, port } = await forkChild(new URL('./upstream.js', import.meta.url).pathname, []);
try {
  const profiling = ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  const proxy =
    target === 'sidecar'
      ? await startSidecar(port, profiling)
      : await forkChild(new URL('./forwarder.js', import.meta.url).pathname, [target, `http://127.0.0.1:${port}`], profiling).then(({ child, port }) => ({
          port,
          stop: () => stopChild(child),
        }));
  await wrk(`http://127.0.0.1:${proxy.port}`, 2, 50);
  const result = await wrk(`http://127.0.0.1:${proxy.port}`, seconds, 50);
  await proxy.stop();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no profile written');
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const self = new Map<string, number>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const id of profile.samples) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')}:${lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length;
  process.stdout.write(`${Math.round(result.rps)} req/s; top self time of ${total} samples (${join(dir, file)}):\n`);
  for (const [key, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    process.stdout.write(`${((n / total) * 100).toFixed(1).padStart(5)}%  ${key}\n`);
  }
} finally {
  await stopChild(upstream);
  await cleanup();
}
