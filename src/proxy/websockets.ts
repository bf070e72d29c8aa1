// The WebSockets the sidecar holds: each identity's count against its limit, from the
// allowed handshake to the client's close, and once open, each one, so the sidecar can end
// them on its own terms: 1008 when the user is no longer allowed after a reload, 1008 when
// the lifetime bound is reached, 1001 on shutdown.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Identity } from '../identity/identity.js';
import type { Metrics } from '../metrics/metrics.js';
import type { PeerCertificate } from '../trust/certificate.js';
import { PerKeyLimit } from './limits.js';
import { stopRelay } from '../gateway/relay.js';

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY = 1008;

/**
 * One held WebSocket, kept on its client socket. Its close listener and lifetime timer are
 * module-level functions finding it there: at 10,000 idle WebSockets every closure made per
 * socket counts (docs/decisions/0007-idle-memory.md).
 */
interface Held {
  readonly tracker: WebSocketTracker;
  readonly user: string;
}

/** Replaces its handshake's Held on the socket when the gateway switched protocols. */
interface Open extends Held {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly identity: Identity;
  readonly peer: string;
  /** The certificate the source stage trusted it by, if any. */
  readonly certificate: PeerCertificate | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The sidecar has sent its close frame; the socket stays until the client closes or the linger ends. */
  closing: boolean;
}

const HELD = Symbol('held WebSocket');
type HeldSocket = Duplex & { [HELD]: Held };

export class WebSocketTracker {
  private readonly open = new Set<Open>();
  /** WebSockets each identity has open or opening. */
  private readonly perIdentity: PerKeyLimit;

  constructor(
    private readonly metrics: Metrics,
    maxPerIdentity: number,
  ) {
    this.perIdentity = new PerKeyLimit(maxPerIdentity);
  }

  get size(): number {
    return this.open.size;
  }

  /** A reloaded limit; WebSockets already held keep theirs. */
  setLimit(maxPerIdentity: number): void {
    this.perIdentity.setLimit(maxPerIdentity);
  }

  /**
   * Counts an allowed handshake on `client` against `user`'s limit until the client's
   * connection closes, whatever the gateway answers; false (nothing counted) past the limit.
   */
  hold(client: Duplex, user: string): boolean {
    if (!this.perIdentity.tryAcquire(user)) return false;
    (client as HeldSocket)[HELD] = { tracker: this, user };
    // 'close' comes once: `on` spares the wrapper `once` makes. The relay closes each side
    // with the other, so the client's close is the WebSocket's.
    client.on('close', released);
    return true;
  }

  /** The gateway switched protocols on a held handshake: the WebSocket is open. */
  add(client: Socket, upstream: Socket, identity: Identity, source: { peer: string; certificate: PeerCertificate | undefined }, lifetimeSeconds: number): void {
    const socket = client as unknown as HeldSocket;
    const open: Open = {
      tracker: this,
      user: socket[HELD].user,
      client,
      upstream,
      identity,
      peer: source.peer,
      certificate: source.certificate,
      timer: undefined,
      closing: false,
    };
    if (lifetimeSeconds > 0) open.timer = setTimeout(lifetimeReached, lifetimeSeconds * 1000, open).unref();
    socket[HELD] = open;
    this.open.add(open);
    this.metrics.websocketsOpen.inc();
    this.metrics.websocketsTotal.inc();
  }

  /** Closes every socket for which `keep` is false, with a policy close (1008); how many it closed. */
  revoke(keep: (identity: Identity, peer: string, certificate: PeerCertificate | undefined) => boolean): number {
    let closed = 0;
    for (const open of [...this.open]) {
      if (!open.closing && !keep(open.identity, open.peer, open.certificate)) {
        this.close(open, CLOSE_POLICY, 'policy', 'access revoked');
        closed++;
      }
    }
    return closed;
  }

  closeAll(code: number, reason: string): void {
    for (const open of [...this.open]) this.close(open, code, 'shutdown', reason);
  }

  /** The client's connection closed: the identity's count goes down, an open WebSocket is forgotten. */
  release(held: Held): void {
    this.perIdentity.release(held.user);
    if (!this.open.delete(held as Open)) return;
    clearTimeout((held as Open).timer);
    this.metrics.websocketsOpen.dec();
  }

  /**
   * Sends the close frame both ways and lets the peers finish, for at most a second. Once
   * per WebSocket: a reload, its lifetime or shutdown coming during that second finds it
   * closing already, and neither counts nor sends it again.
   */
  close(open: Open, code: number, metricReason: string, text: string): void {
    if (!this.open.has(open) || open.closing) return;
    open.closing = true;
    clearTimeout(open.timer);
    const { client, upstream } = open;
    this.metrics.websocketsClosed.inc({ reason: metricReason });
    // Stop relaying the gateway's frames first so the close frame is not interleaved, and
    // keep reading (and dropping) what either side still sends, so its closing frame and
    // FIN are seen and the socket closes as soon as the peer is done, not at the timer.
    stopRelay(upstream);
    stopRelay(client);
    if (client.writable) client.end(closeFrame(code, text, false));
    if (upstream.writable) upstream.end(closeFrame(code, text, true));
    setTimeout(() => {
      client.destroy();
      upstream.destroy();
    }, 1000).unref();
  }
}

function released(this: HeldSocket): void {
  this[HELD].tracker.release(this[HELD]);
}

function lifetimeReached(open: Open): void {
  open.tracker.close(open, CLOSE_POLICY, 'lifetime', 'session lifetime reached');
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
