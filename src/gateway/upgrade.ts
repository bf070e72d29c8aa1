// Relays an allowed WebSocket upgrade with Node's own client: the handshake goes to the
// gateway on a new connection (it becomes the WebSocket), the gateway's answer comes back,
// and after a 101 the two sockets are relayed into each other.
import http, { type IncomingMessage } from 'node:http';
import type https from 'node:https';
import { httpsModule } from '../runtime/tls-modules.js';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { answerTimeout, connectTimeout } from './errors.js';
import { lingerThenDestroy, REFUSAL_LINGER_MS } from './respond.js';

export interface UpgradeTarget {
  /** The gateway's base URL. */
  readonly url: string;
  readonly connectTimeoutMs: number;
  /** The longest wait for the gateway's answer; an open WebSocket may idle for ever. */
  readonly timeoutMs: number;
}

export interface UpgradeHooks {
  /** The gateway answered (101 or anything else). */
  response(status: number): void;
  /** The gateway switched protocols: both sockets are now relayed into each other. */
  switched(upstream: Socket): void;
  /** No answer came (refused, reset, timed out); the client socket is still open. */
  failed(err: Error): void;
}

// No keep-alive: every upgrade's connection becomes its WebSocket or is closed.
const plainAgent = new http.Agent();
let tlsAgent: https.Agent | undefined;

export function relayUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, headers: string[], target: UpgradeTarget, hooks: UpgradeHooks): void {
  const url = new URL(target.url);
  const secure = url.protocol === 'https:';
  const outgoing = (secure ? httpsModule() : http).request({
    agent: secure ? (tlsAgent ??= new (httpsModule().Agent)()) : plainAgent,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port,
    method: req.method,
    // Byte for byte, as on the HTTP path: the assertion binds this exact target.
    path: req.url,
    headers,
    setHost: false,
  });
  // A client that leaves during the handshake takes the gateway's half with it.
  const abandon = () => outgoing.destroy();
  client.once('close', abandon);
  client.on('error', destroyOnError);
  // The wait for the answer has a timer of its own, not the socket's idle timeout: Node
  // keeps that one's Timeout on the socket once cleared, for the WebSocket's whole life.
  const answerTimer = setTimeout(() => outgoing.destroy(answerTimeout()), target.timeoutMs);
  const answered = () => clearTimeout(answerTimer);
  outgoing.once('close', answered);
  outgoing.once('socket', (socket: Socket) => {
    if (!socket.connecting) return;
    const timer = setTimeout(() => outgoing.destroy(connectTimeout()), target.connectTimeoutMs);
    const clear = () => clearTimeout(timer);
    socket.once('connect', clear);
    outgoing.once('close', clear);
  });
  let answering = false;
  outgoing.on('error', (err) => {
    // Once the gateway's answer has begun, a failure cuts the client off instead: an answer
    // of the sidecar's own would land inside the gateway's.
    if (client.destroyed || answering) return;
    client.off('close', abandon);
    hooks.failed(err);
  });
  outgoing.on('response', (res) => {
    answering = true;
    answered();
    // A refusal's body is bounded as a response body is, by the wait between two pieces
    // (the socket's idle timeout: this connection ends with the answer, so nothing keeps
    // it), and a client leaving during it still takes the gateway's half along (abandon).
    res.socket.setTimeout(target.timeoutMs, () => {
      client.destroy();
      outgoing.destroy();
    });
    hooks.response(res.statusCode ?? 502);
    relayAnswer(res, client);
  });
  outgoing.on('upgrade', (res, upstream: Socket, upstreamHead: Buffer) => {
    // The wait for the answer is over; the WebSocket's lifetime is bounded elsewhere.
    answered();
    client.off('close', abandon);
    hooks.response(101);
    client.write(statusBlock(res));
    if (upstreamHead.length > 0) client.write(upstreamHead);
    if (head.length > 0) upstream.write(head);
    splice(client, upstream);
    hooks.switched(upstream);
  });
  outgoing.end();
}

/**
 * The two sockets relayed into each other. What stays attached for the WebSocket's life is
 * module-level listeners and each socket's reference to the other: no closure, so nothing
 * of the handshake or the decision is held. At 10,000 idle WebSockets every object made per
 * socket counts: these listeners as closures, with the wrappers `once` makes, took 7 KiB of
 * RSS per idle WebSocket.
 */
function splice(client: Duplex, upstream: Socket): void {
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
  setTimeout(destroyBoth, REFUSAL_LINGER_MS, this).unref();
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

function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** A refused upgrade (401, 426, ...) goes back to the client as is, then the connection ends. */
function relayAnswer(res: IncomingMessage, client: Duplex): void {
  const drop = new Set(['connection', 'keep-alive', 'transfer-encoding']);
  const raw: string[] = [];
  for (let i = 0; i < res.rawHeaders.length; i += 2) if (!drop.has(res.rawHeaders[i]!.toLowerCase())) raw.push(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
  // Node has removed the chunked framing; the end of the connection delimits the body.
  client.write(statusBlock(res, raw.concat('connection', 'close')));
  res.on('error', () => client.destroy());
  res.pipe(client);
  res.once('end', () => lingerThenDestroy(client));
}

/** The gateway's status and header lines, byte for byte as they arrived (latin1). */
function statusBlock(res: IncomingMessage, raw = res.rawHeaders): Buffer {
  let block = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n`;
  for (let i = 0; i < raw.length; i += 2) block += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return Buffer.from(`${block}\r\n`, 'latin1');
}
