// The request body on its way to the gateway, guarded: a client that stops sending in the
// middle of a body, or sends more than the configured maximum, ends the exchange (and with
// it the upstream request) instead of holding the gateway's connection.
import { Transform, type TransformCallback } from 'node:stream';
import { ExchangeError } from '../gateway/errors.js';

export class RequestBodyGuard extends Transform {
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `maxBytes` 0: no maximum. `stallMs`: the longest wait for the client's next bytes. */
  constructor(
    private readonly maxBytes: number,
    private readonly stallMs: number,
  ) {
    super();
    this.arm();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.maxBytes > 0 && this.bytes > this.maxBytes) {
      done(new ExchangeError('request_body_too_large', 'request body over the maximum'));
      return;
    }
    this.arm();
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    clearTimeout(this.timer);
    done();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    clearTimeout(this.timer);
    done(err);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.stalled(), this.stallMs);
  }

  private stalled(): void {
    // Bytes still waiting for the gateway to read them: the wait is the gateway's, not the client's.
    if (this.readableLength >= this.readableHighWaterMark) {
      this.arm();
      return;
    }
    this.destroy(new ExchangeError('request_body_stalled', 'client stopped sending the request body'));
  }
}

/** The declared length of a request body; undefined when chunked or absent. */
export function declaredLength(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}
