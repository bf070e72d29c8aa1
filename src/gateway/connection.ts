// One client connection's own connection to the gateway. The gateway is a single local
// upstream, so rather than a shared pool each client connection gets a connection of its
// own, opened at its first forwarded request and closed with it. Its exchanges run one at a
// time in the order the client sent them (pipelined requests wait for the answer before
// theirs): the request head is written as one string, the body streamed with backpressure,
// and the answer read by ResponseParser. A connection that fails, times out, or ends out of
// step with its requests is dropped, and the next exchange opens a fresh one.
//
// A connection carries one principal's exchanges (the user, as the decision named them): a
// front proxy's connection to the sidecar carries many users, and a gateway whose framing
// is wrong across reads (a body after a HEAD or 204 answer, bytes past its Content-Length
// in a later read) would have those bytes read as the answer to whatever is sent next on
// that connection. Bytes that come with the answer are caught (the connection is dropped);
// bytes that come later cannot be told from the next answer, so the next answer is never
// another user's: an exchange for another principal opens a connection of its own.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { connectGateway, type GatewayEndpoint } from './endpoint.js';
import { ExchangeError } from './errors.js';
import { ResponseParser, type Fields } from './response-parser.js';

export interface ExchangeHandler {
  /** A 1xx answer before the response. */
  informational(status: number, headers: Fields): void;
  head(status: number, headers: Fields): void;
  data(chunk: Buffer): void;
  end(trailers: Fields): void;
  /** No complete answer: before the head (answer for it) or during the body (cut it off). */
  failed(err: Error): void;
}

export interface Exchange {
  /** Where the request goes: the gateway of the snapshot it was decided under. */
  readonly endpoint: GatewayEndpoint;
  readonly connectTimeoutMs: number;
  /** Whose request it is: a connection never carries two principals' exchanges. */
  readonly principal: string;
  readonly method: string;
  /** The request head, status line to the empty line, written as latin1 (byte for byte as read). */
  readonly head: string;
  /** The request body, or null; `chunked`: sent with chunked framing (no Content-Length). */
  readonly body: Readable | null;
  readonly chunked: boolean;
  /** The longest wait for the answer's head, and between two pieces of its body. */
  readonly timeoutMs: number;
  readonly handler: ExchangeHandler;
}

const LAST_CHUNK = '0\r\n\r\n';
/**
 * RFC 9110, 9.2.1: methods that ask for no change. Only these are sent again after the
 * idle-close race: PUT and DELETE are idempotent, but a gateway that read one and reset
 * before answering would act on it twice if the state changed in between.
 */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export class GatewayConnection {
  private socket: Socket | undefined;
  /** The URL the socket was opened to: an exchange decided for another (after a reload) opens a new one. */
  private connectedTo = '';
  /** The principal whose exchanges the socket carries. */
  private carries = '';
  private current: Exchange | undefined;
  private readonly waiting: Exchange[] = [];
  /** Stops sending the current exchange's body; set while it is being sent. */
  private stopBody: (() => void) | undefined;
  private readonly parser: ResponseParser;
  private closed = false;
  /** The socket has carried an answer: the gateway may since have closed it as idle. */
  private reused = false;
  /** Bytes of the current exchange's answer have come. */
  private answering = false;

  constructor() {
    this.parser = new ResponseParser({
      informational: (status, headers) => this.current?.handler.informational(status, headers),
      head: (status, headers) => this.current?.handler.head(status, headers),
      data: (chunk) => this.current?.handler.data(chunk),
      end: (trailers, reusable) => this.answered(trailers, reusable),
    });
  }

  send(exchange: Exchange): void {
    if (this.closed) {
      exchange.handler.failed(new ExchangeError('reset', 'the client connection has closed'));
      return;
    }
    this.waiting.push(exchange);
    if (this.current === undefined) this.next();
  }

  /** The client no longer wants `exchange`: a half-done exchange takes the connection with it. */
  cancel(exchange: Exchange): void {
    if (this.current === exchange) {
      this.current = undefined;
      this.drop();
      this.next();
      return;
    }
    const at = this.waiting.indexOf(exchange);
    if (at >= 0) this.waiting.splice(at, 1);
  }

  /** Stops reading the answer (the client is not reading it either), and starts again. */
  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  /** The client connection has closed: nothing more is sent on this one. */
  close(): void {
    this.closed = true;
    this.waiting.length = 0;
    this.current = undefined;
    this.drop();
  }

  private next(): void {
    const exchange = this.waiting.shift();
    if (exchange === undefined) return;
    this.current = exchange;
    if (this.socket !== undefined && (this.connectedTo !== exchange.endpoint.url || this.carries !== exchange.principal)) this.drop();
    const socket = this.socket ?? this.connect(exchange);
    this.answering = false;
    this.parser.expect(exchange.method);
    socket.setTimeout(exchange.timeoutMs);
    socket.write(exchange.head, 'latin1');
    if (exchange.body) this.sendBody(socket, exchange.body, exchange.chunked);
  }

  private connect(exchange: Exchange): Socket {
    const socket = connectGateway(exchange.endpoint, exchange.connectTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.read(socket, chunk));
    socket.on('timeout', () => this.timedOut(socket));
    socket.on('error', (err) => this.broke(socket, err));
    socket.on('close', () => this.ended(socket));
    this.socket = socket;
    this.connectedTo = exchange.endpoint.url;
    this.carries = exchange.principal;
    this.reused = false;
    return socket;
  }

  private sendBody(socket: Socket, body: Readable, chunked: boolean): void {
    const onData = (chunk: Buffer) => {
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
        socket.write(chunk);
        ok = socket.write('\r\n', 'latin1');
        process.nextTick(() => socket.uncork());
      } else {
        ok = socket.write(chunk);
      }
      if (!ok) {
        body.pause();
        socket.once('drain', onDrain);
      }
    };
    const onDrain = () => body.resume();
    const onEnd = () => {
      stop();
      if (chunked) socket.write(LAST_CHUNK, 'latin1');
    };
    const onError = (err: Error) => {
      stop();
      if (this.socket === socket) this.fail(err);
    };
    const stop = () => {
      this.stopBody = undefined;
      body.off('data', onData).off('end', onEnd).off('error', onError);
      socket.off('drain', onDrain);
    };
    this.stopBody = () => {
      stop();
      // The rest of the body is of no use now; its stream is not read any further.
      body.destroy();
    };
    body.on('data', onData).once('end', onEnd).once('error', onError);
  }

  private read(socket: Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    if (this.current === undefined) {
      // The gateway sent bytes no request asked for: the connection is out of step.
      this.drop();
      return;
    }
    this.answering = true;
    try {
      this.parser.feed(chunk);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private answered(trailers: Fields, reusable: boolean): void {
    const exchange = this.current!;
    this.current = undefined;
    // An answer that came before the whole body was sent leaves the request unfinished on
    // this connection: it cannot carry another.
    if (!reusable || this.stopBody !== undefined) this.drop();
    else {
      this.socket?.setTimeout(0);
      this.reused = true;
    }
    exchange.handler.end(trailers);
    this.next();
  }

  private timedOut(socket: Socket): void {
    if (socket !== this.socket || this.current === undefined) return;
    this.fail(
      this.parser.headRead
        ? new ExchangeError('response_stalled', 'upstream stopped sending the response body')
        : new ExchangeError('answer_timeout', 'upstream timed out'),
    );
  }

  private broke(socket: Socket, err: Error): void {
    if (socket !== this.socket) return;
    if (this.current === undefined) this.drop();
    else this.lost(err);
  }

  /** The socket closed: a body delimited by the close is complete, anything else is cut short. */
  private ended(socket: Socket): void {
    if (socket !== this.socket) return;
    if (this.current === undefined) {
      this.socket = undefined;
      return;
    }
    try {
      this.parser.closed();
    } catch (err) {
      this.lost(err as Error);
    }
  }

  /**
   * The gateway reset or closed a connection that had carried an answer, before a byte of
   * this one: most likely it closed the connection as idle just as the request went out,
   * a race every keep-alive client meets (the real gateway's browser tests met it as a 502).
   * A safe request without a body is sent again, once, on a new connection (a new one is
   * never reused, so never retried); anything else fails as it would have.
   */
  private lost(err: Error): void {
    const exchange = this.current;
    if (exchange === undefined || !this.reused || this.answering || exchange.body !== null || !SAFE.has(exchange.method)) {
      this.fail(err);
      return;
    }
    this.current = undefined;
    this.drop();
    this.waiting.unshift(exchange);
    this.next();
  }

  private fail(err: Error): void {
    const exchange = this.current;
    this.current = undefined;
    this.drop();
    exchange?.handler.failed(err);
    this.next();
  }

  /** Gives up the socket (and any body still being sent on it); the next exchange opens another. */
  private drop(): void {
    this.stopBody?.();
    const socket = this.socket;
    this.socket = undefined;
    socket?.destroy();
  }
}
