// Every data-plane connection from accept to close. Two guarantees live here, for every
// path (inline, upgrade, forward-auth, refusals) at once:
// - an error handler is attached at accept and stays to the end. Node removes its own when
//   it hands a socket to the `upgrade` listener, and an 'error' event with no listener
//   ends the process: a client's reset must only ever end its own connection;
// - a connection whose output stops moving (the client stopped reading) is destroyed after
//   the stall timeout, so it cannot hold a descriptor, an upstream connection or a
//   WebSocket's buffers for as long as the client likes.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { LineBudget, REFUSAL_LINES } from '../logging/line-budget.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';

interface Progress {
  /** Bytes whose write completed (handed to the kernel) when last seen moving. */
  written: number;
  since: number;
}

const CHECK_INTERVAL_MS = 1000;

export class ConnectionWatch {
  private readonly open = new Map<Socket, Progress>();
  private readonly timer: NodeJS.Timeout;
  /** One listener for every socket, not a closure each (10,000 idle WebSockets are 10,000 sockets). */
  private readonly untrack: (this: Socket) => void;
  private readonly lines = new LineBudget(REFUSAL_LINES, Date.now());

  constructor(
    server: Server,
    private stallMs: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    const open = this.open;
    this.untrack = function (this: Socket) {
      open.delete(this);
    };
    // Over TLS the HTTP layer writes to the TLS socket made at the handshake; the TCP
    // socket under it gets a handler too, from the moment it is accepted.
    const tls = 'addContext' in server;
    server.on('connection', (socket: Socket) => {
      socket.on('error', destroySelf);
      if (!tls) this.track(socket);
    });
    if (tls)
      server.on('secureConnection', (socket: Socket) => {
        socket.on('error', destroySelf);
        this.track(socket);
      });
    this.timer = setInterval(() => this.destroyStalled(Date.now()), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  get size(): number {
    return this.open.size;
  }

  setStallTimeout(ms: number): void {
    this.stallMs = ms;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private track(socket: Socket): void {
    this.open.set(socket, { written: 0, since: Date.now() });
    socket.on('close', this.untrack);
  }

  private destroyStalled(now: number): void {
    for (const [socket, progress] of this.open) {
      // writableLength counts the write in flight and those queued behind it; bytesWritten
      // counts both too, so their difference grows only when a write completes.
      const pending = socket.writableLength;
      const written = socket.bytesWritten - pending;
      if (pending === 0 || written !== progress.written) {
        progress.written = written;
        progress.since = now;
        continue;
      }
      if (now - progress.since < this.stallMs) continue;
      this.metrics.connectionsStalled.inc();
      // Within a line budget per peer, as refusals are: many stalled connections from one
      // pod are one bounded run of lines, and the counter has them all.
      const peer = socket.remoteAddress ?? '';
      const held = this.lines.take(peer, now);
      if (held !== undefined)
        this.logger.info({ peer, pendingBytes: pending, ...(held > 0 && { heldBack: held }) }, 'closed a connection whose client stopped reading');
      socket.destroy();
    }
  }
}

function destroySelf(this: Socket): void {
  this.destroy();
}
