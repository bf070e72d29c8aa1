// A bound on the connections a class of peers holds at once on one listener, checked at
// accept: past it a new connection of that class is closed at once, unanswered. The data
// port puts every peer the source stage refuses by address alone (trust/source.ts,
// refusedByAddress) in one class: each still gets its 403 with the reason, but without the
// bound any pod that can reach the port could hold all of listen.maxConnections with idle
// or slow connections (each lives up to the headers timeout and is opened again at once),
// and the trusted proxy's next connection would be dropped at accept. The admin port gives
// each peer address its own: one pod cannot take the connections the kubelet's probes and
// Prometheus need.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { PerKeyLimit } from '../proxy/limits.js';

export class ConnectionQuota {
  private readonly held: PerKeyLimit;

  /**
   * `classOf`: the class a peer address belongs to, read at each accept (so a reload or a
   * discovered proxy applies to the next connection); undefined leaves it uncounted.
   * `dropped`: called for each connection closed at accept.
   */
  constructor(server: Server, limit: number, classOf: (peer: string) => string | undefined, dropped: () => void) {
    this.held = new PerKeyLimit(limit);
    // The raw TCP connection, over TLS too: before the handshake, which costs more than the accept.
    server.on('connection', (socket: Socket) => {
      const key = classOf(socket.remoteAddress ?? '');
      if (key === undefined) return;
      if (!this.held.tryAcquire(key)) {
        dropped();
        socket.destroy();
        return;
      }
      socket.once('close', () => this.held.release(key));
    });
  }

  /** Connections of `key`'s class held now. */
  count(key: string): number {
    return this.held.count(key);
  }

  /** A reload's limit; connections already held stay until they close. */
  setLimit(limit: number): void {
    this.held.setLimit(limit);
  }
}
