// WebSocket costs: many idle connections held open through a path (memory and file
// descriptors per connection), and echo round trips (throughput through a path).
import { fork, type ChildProcess } from 'node:child_process';
import { WebSocket } from 'ws';
import { IDENTITY_HEADERS } from './load.js';
import { owned } from './procs.js';

const CLIENT = new URL('./ws-client.js', import.meta.url).pathname;

export interface IdleClients {
  opened: number;
  failed: number;
  close(): Promise<void>;
}

/**
 * Opens `total` idle WebSockets to `url` from `processes` child processes, each bound to
 * its own loopback source address so no one address runs out of ephemeral ports.
 */
export async function openIdle(url: string, total: number, processes = 4): Promise<IdleClients> {
  const children: ChildProcess[] = [];
  const results = await Promise.all(
    Array.from({ length: processes }, (_, i) => {
      const count = Math.floor(total / processes) + (i < total % processes ? 1 : 0);
      const child = owned(fork(CLIENT, [url, String(count), `127.0.0.${10 + i}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] }));
      children.push(child);
      return new Promise<{ opened: number; failed: number }>((resolve, reject) => {
        child.once('message', (m) => resolve(m as { opened: number; failed: number }));
        child.once('exit', (code) => reject(new Error(`WebSocket client exited with ${code}`)));
      });
    }),
  );
  return {
    opened: results.reduce((n, r) => n + r.opened, 0),
    failed: results.reduce((n, r) => n + r.failed, 0),
    close: async () => {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}

export interface EchoResult {
  roundTrips: number;
  seconds: number;
  perSecond: number;
  bytesPerSecond: number;
}

/** `connections` sockets, each with one message in flight: send, await the echo, repeat. */
export async function echo(url: string, connections: number, messageBytes: number, seconds: number): Promise<EchoResult> {
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url, { headers: IDENTITY_HEADERS });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
  const payload = Buffer.alloc(messageBytes, 0x61);
  let roundTrips = 0;
  let running = true;
  const started = performance.now();
  for (const ws of sockets) {
    ws.on('message', () => {
      roundTrips++;
      if (running) ws.send(payload);
    });
    ws.send(payload);
  }
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  for (const ws of sockets) ws.terminate();
  return { roundTrips, seconds: elapsed, perSecond: roundTrips / elapsed, bytesPerSecond: (roundTrips * messageBytes) / elapsed };
}
