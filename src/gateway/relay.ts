// Two sockets relayed into each other (a WebSocket's client and gateway sides), and a
// socket let go after a short linger once its last bytes are written.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * How long a connection the sidecar ends stays open after its last bytes, so the client
 * can read them before the socket goes (destroying at once could reset it unread).
 */
export const LINGER_MS = 1000;

/** Reads and drops what the client still sends, and destroys the socket after the linger. */
export function lingerThenDestroy(socket: Duplex): void {
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * The two sockets relayed into each other. What stays attached for the WebSocket's life is
 * module-level listeners and each socket's reference to the other: no closure, so nothing
 * of the handshake or the decision is held. At 10,000 idle WebSockets every object made per
 * socket counts: these listeners as closures, with the wrappers `once` makes, took 7 KiB of
 * RSS per idle WebSocket.
 */
export function splice(client: Duplex, upstream: Socket): void {
  client.off('error', destroyOnError);
  link(client, upstream);
  link(upstream, client);
}

function link(side: Duplex, peer: Duplex): void {
  (side as Relayed)[PEER] = peer;
  // Neither side outlives the other: a reset, or the sidecar closing one (a client that
  // stopped reading, at the stall timeout), closes both. An orderly end is passed on, and
  // the other side gets a short while to finish before both go (a peer that never answers
  // a FIN must not keep two descriptors open). 'end' and 'close' come once: `on` spares the
  // wrapper `once` makes.
  side.on('error', destroyPeer);
  side.on('close', destroyPeer);
  side.on('end', halfClosed);
  // One direction: every chunk written on as it comes, reading paused while the other
  // side's buffer is full. Lighter than pipe(), which keeps state of its own per direction.
  side.on('data', passOn);
  side.on('drain', resumePeer);
}

/** A relayed socket holds the other side of its WebSocket. */
const PEER = Symbol('peer');
type Relayed = Duplex & { [PEER]: Duplex };

/** Sockets whose relay was stopped: what they still send is read and dropped. */
const stopped = new WeakSet<Duplex>();

function passOn(this: Relayed, chunk: Buffer): void {
  if (!stopped.has(this) && !this[PEER].write(chunk)) this.pause();
}

function resumePeer(this: Relayed): void {
  this[PEER].resume();
}

function destroyPeer(this: Relayed): void {
  this[PEER].destroy();
}

function halfClosed(this: Relayed): void {
  if (!stopped.has(this)) this[PEER].end();
  setTimeout(destroyBoth, LINGER_MS, this).unref();
}

function destroyBoth(side: Relayed): void {
  side.destroy();
  side[PEER].destroy();
}

/** Stops relaying what `from` sends (the sidecar is about to close both sides itself). */
export function stopRelay(from: Duplex): void {
  stopped.add(from);
  from.resume();
}

export function destroyOnError(this: Duplex): void {
  this.destroy();
}
