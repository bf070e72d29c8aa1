// Where the heap sampler (heap-sampler.ts, inside the sidecar) and the runner
// (heap-profile.ts) meet: files named by the sidecar's process id.
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function samplerFile(pid: number, what: 'started' | 'heapprofile'): string {
  return join(tmpdir(), `tps-heap-sampler-${pid}.${what}`);
}
