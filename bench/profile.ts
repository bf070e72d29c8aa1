// `node .run/bench/bench/profile.js [seconds] [sidecar|proxy-layer|node-http|undici]`:
// runs the sidecar inline (or a bare forwarder) under wrk with --cpu-prof and prints the
// functions with the most self time (the .cpuprofile is kept for Chrome DevTools or
// speedscope). `make bench` profiles the sidecar the same way for its report.
import { profileUnderLoad, type ProfiledStart } from './cpu-profile.js';
import { forkChild } from './paths.js';
import { cleanup, cpuSeconds, stopChild } from './procs.js';
import { startSidecar } from './sidecar.js';

const seconds = Number(process.argv[2] ?? 10);
const target = process.argv[3] ?? 'sidecar';
const { child: upstream, port } = await forkChild(new URL('./upstream.js', import.meta.url).pathname, []);
try {
  const start: ProfiledStart =
    target === 'sidecar'
      ? async (nodeArgs) => {
          const sidecar = await startSidecar(port, nodeArgs);
          return { port: sidecar.port, pid: sidecar.child.pid!, stop: () => sidecar.stop() };
        }
      : async (nodeArgs) => {
          const forwarder = await forkChild(new URL('./forwarder.js', import.meta.url).pathname, [target, `http://127.0.0.1:${port}`], [...nodeArgs]);
          return { port: forwarder.port, pid: forwarder.child.pid!, stop: () => stopChild(forwarder.child) };
        };
  const result = await profileUnderLoad(start, seconds, cpuSeconds);
  process.stdout.write(
    `${Math.round(result.rps)} req/s, ${result.cpuMicrosPerRequest.toFixed(1)} µs CPU per request; top self time of ${result.samples} samples (${result.file}):\n`,
  );
  for (const t of result.top) process.stdout.write(`${(t.share * 100).toFixed(1).padStart(5)}%  ${t.microsPerRequest.toFixed(1).padStart(6)} µs  ${t.name}\n`);
} finally {
  await stopChild(upstream);
  await cleanup();
}
