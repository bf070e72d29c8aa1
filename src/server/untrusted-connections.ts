// Connections from peers the source stage refuses by address alone (trust/source.ts,
// refusedByAddress). Each still gets its answer, a 403 that names the reason, but only so
// many are held at once: past listen.maxUntrustedConnections a new one is closed at accept,
// unanswered. Without the bound, any pod that can reach the data port could hold all of
// listen.maxConnections with idle or slow connections (each lives up to the headers timeout
// and can be opened again at once), and the trusted proxy's next connection would be
// dropped at accept; or hold enough of them to take the sidecar past its memory limit.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Metrics } from '../metrics/metrics.js';

export class UntrustedConnections {
  private held = 0;
  /** One listener for every socket, not a closure each. */
  private readonly release: () => void;

  /** `refused`: whether the current snapshot refuses a peer address by itself. */
  constructor(
    server: Server,
    private limit: number,
    refused: (peer: string) => boolean,
    metrics: Metrics,
  ) {
    this.release = () => {
      this.held--;
    };
    // The raw TCP connection, over TLS too: before the handshake, which costs more than the accept.
    server.on('connection', (socket: Socket) => {
      if (!refused(socket.remoteAddress ?? '')) return;
      if (this.held >= this.limit) {
        metrics.connectionsDropped.inc({ reason: 'untrusted_limit' });
        socket.destroy();
        return;
      }
      this.held++;
      socket.once('close', this.release);
    });
  }

  /** Connections from refused addresses held now. */
  get size(): number {
    return this.held;
  }

  /** A reload's limit; connections already held stay until they close. */
  setLimit(limit: number): void {
    this.limit = limit;
  }
}
