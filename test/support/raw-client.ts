// The tests' one raw-socket client, for what an HTTP client library will not do: send bytes
// byte for byte (an attack must reach the sidecar as written, not as a client library would
// normalise it), in pieces, pipelined; stop reading, stay connected for ever, or reset the
// connection. rawRequest() is the one-shot form: write, then read until the server closes.
import { connect, type Socket } from 'node:net';
import { waitFor } from '../../harness/wait.js';

export class RawClient {
  private chunks: Buffer[] = [];
  /** Settles when the server ends or closes the connection. */
  readonly closed: Promise<void>;
  private closedFlag = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => this.chunks.push(c));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.closedFlag = true;
        resolve();
      };
      socket.once('end', done);
      socket.once('close', done);
    });
  }

  /**
   * `allowHalfOpen`: stay open after the server's FIN, as a client that means to reset later.
   * `localAddress`: the source address (one of a test network's own).
   */
  static connect(port: number, host = '127.0.0.1', options: { allowHalfOpen?: boolean; localAddress?: string } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({
        host,
        port,
        allowHalfOpen: options.allowHalfOpen ?? false,
        ...(options.localAddress && { localAddress: options.localAddress }),
      });
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Everything received so far, as bytes. */
  get bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Everything received so far, one character per byte. */
  get text(): string {
    return this.bytes.toString('latin1');
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Waits until what was received satisfies `ready`. */
  async receive(ready: (text: string) => boolean, what: string, timeoutMs = 5000): Promise<string> {
    await waitFor(() => ready(this.text), what, timeoutMs);
    return this.text;
  }

  /** Stop reading: what the server sends stays in the kernel's buffers. */
  stopReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  /** A TCP reset (RST), as a crashed or hostile client sends. */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  /** An orderly end of the client's side (FIN); the socket stays open for reading. */
  finish(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * Connects, writes `bytes`, and reads until the server ends the connection or `timeoutMs`
 * passes; the reply, one character per byte.
 */
export async function rawRequest(port: number, bytes: string | Buffer, host = '127.0.0.1', timeoutMs = 3000, localAddress?: string): Promise<string> {
  const client = await RawClient.connect(port, host, localAddress === undefined ? {} : { localAddress });
  client.write(bytes);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
  client.destroy();
  return client.text;
}

/** The status code of the first response in a raw reply (0 when there is none). */
export function statusOf(reply: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(reply);
  return m ? Number(m[1]) : 0;
}

/** The status codes of every response in a raw reply, in order. */
export function statuses(reply: string): number[] {
  return [...reply.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** The first answer in a raw reply is in whole: its head, and as many body bytes as its content-length says (none without one). */
export function answeredWhole(reply: string): boolean {
  const end = reply.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const length = /\r\ncontent-length: (\d+)\r\n/i.exec(reply.slice(0, end + 2));
  return reply.length - (end + 4) >= Number(length?.[1] ?? 0);
}
