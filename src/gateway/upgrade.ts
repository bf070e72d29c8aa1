// Relays an allowed WebSocket upgrade with Node's own HTTP client on a connection of the
// sidecar's own (endpoint.ts: the same connect, TLS and connect deadline as proxied
// requests): the handshake goes to the gateway on a new connection (it becomes the
// WebSocket), the gateway's answer comes back, and after a 101 the two sockets are relayed
// into each other (relay.ts).
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connectGateway, type GatewayEndpoint } from './endpoint.js';
import { ExchangeError } from './errors.js';
import { destroyOnError, lingerThenDestroy, splice } from './relay.js';

export interface UpgradeTarget {
  readonly endpoint: GatewayEndpoint;
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

export function relayUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, headers: string[], target: UpgradeTarget, hooks: UpgradeHooks): void {
  // No agent: every upgrade's connection becomes its WebSocket or is closed.
  const outgoing = http.request({
    createConnection: () => connectGateway(target.endpoint, target.connectTimeoutMs),
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
  const answerTimer = setTimeout(() => outgoing.destroy(new ExchangeError('answer_timeout', 'upstream timed out')), target.timeoutMs);
  const answered = () => clearTimeout(answerTimer);
  outgoing.once('close', answered);
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
