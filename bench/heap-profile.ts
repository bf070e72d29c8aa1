// Where the inline request's allocations go: the sidecar runs under wrk with V8's sampling
// heap profiler (heap-sampler.ts, freed objects included), and the sampled bytes become
// bytes allocated per request, by function and by where the code lives.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { frameName, type FlameNode } from './cpu-profile.js';
import { samplerFile } from './heap-files.js';
import { wrk } from './load.js';
import { startSidecar } from './sidecar.js';

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

export interface Allocation {
  name: string;
  kind: FlameNode['kind'];
  bytesPerRequest: number;
}

export interface AllocationProfile {
  seconds: number;
  requests: number;
  bytesPerRequest: number;
  byKind: Record<FlameNode['kind'], number>;
  top: Allocation[];
}

const SAMPLER = new URL('./heap-sampler.js', import.meta.url).pathname;

/** Waits (bounded) for the sampler's file; the sampler writes it in response to a signal. */
async function fileOf(path: string): Promise<string> {
  for (let i = 0; i < 300 && !existsSync(path); i++) await sleep(50);
  if (!existsSync(path)) throw new Error(`the heap sampler wrote no ${path}`);
  const text = readFileSync(path, 'utf8');
  rmSync(path);
  return text;
}

export async function allocationsInline(upstreamPort: number, seconds: number): Promise<AllocationProfile> {
  const sidecar = await startSidecar(upstreamPort, ['--import', SAMPLER]);
  const pid = sidecar.child.pid!;
  let requests: number;
  let profile: { head: SamplingNode };
  try {
    await wrk(`http://127.0.0.1:${sidecar.port}`, 2, 50);
    process.kill(pid, 'SIGUSR2');
    await fileOf(samplerFile(pid, 'started'));
    requests = (await wrk(`http://127.0.0.1:${sidecar.port}`, seconds, 50)).requests;
    process.kill(pid, 'SIGUSR2');
    profile = JSON.parse(await fileOf(samplerFile(pid, 'heapprofile'))) as { head: SamplingNode };
  } finally {
    await sidecar.stop();
  }
  return summariseAllocations(profile.head, requests, seconds);
}

export function summariseAllocations(head: SamplingNode, requests: number, seconds: number): AllocationProfile {
  const byName = new Map<string, Allocation>();
  const byKind: Record<FlameNode['kind'], number> = { sidecar: 0, dependency: 0, node: 0, vm: 0 };
  let total = 0;
  const walk = (node: SamplingNode) => {
    if (node.selfSize > 0) {
      const { name, kind } = frameName(node.callFrame);
      const entry = byName.get(name) ?? { name, kind, bytesPerRequest: 0 };
      entry.bytesPerRequest += node.selfSize / requests;
      byName.set(name, entry);
      byKind[kind] += node.selfSize / requests;
      total += node.selfSize;
    }
    for (const child of node.children) walk(child);
  };
  walk(head);
  const top = [...byName.values()].sort((a, b) => b.bytesPerRequest - a.bytesPerRequest).slice(0, 15);
  return { seconds, requests, bytesPerRequest: total / requests, byKind, top };
}
