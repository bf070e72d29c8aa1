// Open WebSockets, so the sidecar can end them on its own terms: 1008 when the user is no
// longer allowed after a reload, 1008 when the lifetime bound is reached, 1001 on shutdown.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Identity } from '../identity/identity.js';
import type { Metrics } from '../metrics/metrics.js';
import type { PeerCertificate } from '../trust/certificate.js';
import { stopRelay } from './upgrade.js';

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;

interface Tracked {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly identity: Identity;
  readonly peer: string;
  /** The certificate the source stage trusted it by, if any. */
  readonly certificate: PeerCertificate | undefined;
  readonly timer: NodeJS.Timeout | undefined;
}

export class WebSocketTracker {
  private readonly open = new Set<Tracked>();

  constructor(private readonly metrics: Metrics) {}

  get size(): number {
    return this.open.size;
  }

  add(client: Socket, upstream: Socket, identity: Identity, source: { peer: string; certificate: PeerCertificate | undefined }, lifetimeSeconds: number): void {
    const timer =
      lifetimeSeconds > 0 ? setTimeout(() => this.close(entry, CLOSE_POLICY, 'lifetime', 'session lifetime reached'), lifetimeSeconds * 1000) : undefined;
    timer?.unref();
    const entry: Tracked = { client, upstream, identity, peer: source.peer, certificate: source.certificate, timer };
    this.open.add(entry);
    this.metrics.websocketsOpen.inc();
    this.metrics.websocketsTotal.inc();
    const forget = () => {
      if (!this.open.delete(entry)) return;
      clearTimeout(entry.timer);
      this.metrics.websocketsOpen.dec();
    };
    // The relay closes each side with the other, so the client's close is the WebSocket's.
    // 'close' comes once: `on` spares the wrapper `once` makes, at every idle WebSocket.
    client.on('close', forget);
  }

  /** Closes every socket for which `keep` is false, with a policy close (1008). */
  revoke(keep: (identity: Identity, peer: string, certificate: PeerCertificate | undefined) => boolean): number {
    let closed = 0;
    for (const entry of [...this.open]) {
      if (!keep(entry.identity, entry.peer, entry.certificate)) {
        this.close(entry, CLOSE_POLICY, 'policy', 'access revoked');
        closed++;
      }
    }
    return closed;
  }

  closeAll(code: number, reason: string): void {
    for (const entry of [...this.open]) this.close(entry, code, 'shutdown', reason);
  }

  private close(entry: Tracked, code: number, metricReason: string, text: string): void {
    if (!this.open.has(entry)) return;
    this.metrics.websocketsClosed.inc({ reason: metricReason });
    // Stop relaying the gateway's frames first so the close frame is not interleaved, and
    // keep reading (and dropping) what either side still sends, so its closing frame and
    // FIN are seen and the socket closes as soon as the peer is done, not at the timer.
    stopRelay(entry.upstream);
    stopRelay(entry.client);
    if (entry.client.writable) entry.client.end(closeFrame(code, text, false));
    if (entry.upstream.writable) entry.upstream.end(closeFrame(code, text, true));
    setTimeout(() => {
      entry.client.destroy();
      entry.upstream.destroy();
    }, 1000).unref();
  }
}

/** An RFC 6455 close frame; frames towards a server must be masked. */
export function closeFrame(code: number, reason: string, masked: boolean): Buffer {
  const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason.slice(0, 123))]);
  const header = Buffer.from([0x88, (masked ? 0x80 : 0) | payload.length]);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([header, mask, body]);
}
