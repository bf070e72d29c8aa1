// Preloaded into the profiled sidecar (`node --import`): V8's sampling heap profiler,
// started by the first SIGUSR2 and stopped by the second, counting objects the garbage
// collector has already freed too (the allocation rate, not what stays). Each step
// writes a file named by the process id that the runner waits for.
import { renameSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { samplerFile } from './heap-files.js';

const session = new Session();
session.connect();
let sampling = false;
process.on('SIGUSR2', () => {
  void (async () => {
    if (!sampling) {
      sampling = true;
      await session.post('HeapProfiler.enable');
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      publish(samplerFile(process.pid, 'started'), '');
      return;
    }
    const { profile } = await session.post('HeapProfiler.stopSampling');
    publish(samplerFile(process.pid, 'heapprofile'), JSON.stringify(profile));
  })();
});

/** Written whole, then renamed into place: the runner never reads half a file. */
function publish(path: string, text: string): void {
  writeFileSync(`${path}.part`, text);
  renameSync(`${path}.part`, path);
}
