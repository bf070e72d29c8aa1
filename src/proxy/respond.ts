// How the sidecar answers on its own behalf: small JSON bodies that never echo input.
// Header values are written byte for byte as they arrived (a user name in UTF-8 stays the
// same bytes), and a connection the sidecar gives up on is released, not kept half-open.
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { lingerThenDestroy } from '../gateway/relay.js';
import { markClosing } from './in-flight.js';

export function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (headers['connection'] === 'close') markClosing(res.req.socket);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  // A Buffer, not a string: Node writes the head as latin1 (one byte per character, as
  // header values arrive) only when the body is not a string it can join the head to.
  res.end(Buffer.from(body));
}

/** A whole HTTP/1.1 answer as bytes: head in latin1 (byte-exact values), JSON body, then close. */
export function rawAnswer(status: number, body: string, headers: Record<string, string> = {}): Buffer {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n`;
  for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
  return Buffer.concat([Buffer.from(`${head}connection: close\r\n\r\n`, 'latin1'), Buffer.from(body)]);
}

/** An answer written straight to a socket that asked to upgrade (or that the parser gave up on), then released. */
export function rejectUpgrade(socket: Duplex, status: number, body: string, headers: Record<string, string> = {}): void {
  endAndRelease(socket, rawAnswer(status, body, headers));
}

/**
 * Writes the last bytes and ends the connection: what the client still sends is read and
 * dropped, and after a short linger the socket is destroyed whether or not the client
 * closed its side. A client that never closes or never reads cannot keep the descriptor.
 */
export function endAndRelease(socket: Duplex, bytes: Buffer): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(bytes);
  lingerThenDestroy(socket);
}
