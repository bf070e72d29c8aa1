// Cold start: from spawning the built command to the first 200 from /readyz (static
// trust, no discovery), then the idle RSS once it has settled.
import { setTimeout as sleep } from 'node:timers/promises';
import { httpOk, rssBytes, start, until } from './procs.js';
import { cleanEnv, MAIN, sidecarConfig } from './sidecar.js';

export interface ColdStart {
  readyMs: number[];
  idleRssBytes: number[];
}

export async function coldStarts(upstreamPort: number, runs: number): Promise<ColdStart> {
  const readyMs: number[] = [];
  const idleRssBytes: number[] = [];
  for (let i = 0; i < runs; i++) {
    const { path, adminPort } = await sidecarConfig(upstreamPort);
    const t0 = performance.now();
    const proc = start(process.execPath, [MAIN, 'serve', '--config', path], { env: cleanEnv() });
    try {
      await until('sidecar ready', () => httpOk(`http://127.0.0.1:${adminPort}/readyz`), 10000, 2);
      readyMs.push(performance.now() - t0);
      await sleep(2000);
      idleRssBytes.push(rssBytes(proc.pid));
    } finally {
      await proc.stop();
    }
  }
  return { readyMs, idleRssBytes };
}
