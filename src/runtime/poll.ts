// Watches a file or folder by content, not by inotify: Kubernetes updates ConfigMap and
// Secret mounts by swapping a symlink, which inotify on the file itself misses.
import { createHash } from 'node:crypto';

export interface Poller {
  stop(): void;
}

export function pollFingerprint(fingerprint: () => string, intervalMs: number, onChange: () => void): Poller {
  let last = fingerprint();
  const timer = setInterval(() => {
    const now = fingerprint();
    if (now !== last) {
      last = now;
      onChange();
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

export function digest(parts: Iterable<string | Buffer>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}
