// The gateway's answers, parsed as they stream in on a connection of the sidecar's own:
// status line and header lines, then the body by its framing (RFC 9112, 6.3), chunked
// bodies decoded and their trailers read. Strict where a lenient reading could let two
// parties disagree on where a response ends: one status line form, token header names, no
// folded lines, no bare CR or LF, one Content-Length value, chunk sizes in at most 13 hex
// digits (a safe integer). Anything else fails the exchange and the connection is not used again.
import { trimOws } from '../request/headers.js';
import { ExchangeError } from './errors.js';

/** Header fields by lower-case name; a name sent more than once keeps every value in order. */
export type Fields = Record<string, string | string[]>;

export interface ResponseEvents {
  /** A 1xx answer before the response (100, 102, 103). */
  informational(status: number, headers: Fields): void;
  /** The final response's head. */
  head(status: number, headers: Fields): void;
  /** A piece of the response body, framing removed. */
  data(chunk: Buffer): void;
  /** The response is complete; `reusable`: the connection may carry another exchange. */
  end(trailers: Fields, reusable: boolean): void;
}

/** Node's default for a response head (http.maxHeaderSize), as the undici pool it replaced used. */
const MAX_HEAD_BYTES = 16 * 1024;
const MAX_CHUNK_LINE = 1024;
const CRLF_CRLF = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [\t\x20-\x7e\x80-\xff]*)?$/;
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,13})[\t ]*(?:;[\t\x20-\x7e\x80-\xff]*)?$/;

type State = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'until-close' | 'done';

export function badResponse(why: string): ExchangeError {
  return new ExchangeError('bad_response', `the gateway's response is malformed: ${why}`);
}

export class ResponseParser {
  private state: State = 'done';
  private pending: Buffer | undefined;
  private remaining = 0;
  private noBody = false;
  private reusable = true;
  /** The trailers of a response just completed, handed on once the bytes read with it are judged. */
  private completed: Fields | undefined;

  constructor(private readonly events: ResponseEvents) {}

  /** Starts reading the answer to a request with `method` (a HEAD's answer has no body). */
  expect(method: string): void {
    this.state = 'head';
    this.pending = undefined;
    this.noBody = method === 'HEAD';
    this.reusable = true;
    this.completed = undefined;
  }

  /** True once the final response's head has been read. */
  get headRead(): boolean {
    return this.state !== 'head' && this.state !== 'done';
  }

  /** Bytes from the gateway; throws a BAD_RESPONSE error on anything it may not send. */
  feed(input: Buffer): void {
    if (this.state === 'done') throw badResponse('bytes with no request to answer');
    let chunk = this.pending ? Buffer.concat([this.pending, input]) : input;
    this.pending = undefined;
    // A stage below may finish the response (the state is the field's, not this narrowing's).
    while (chunk.length > 0 && (this.state as State) !== 'done') {
      switch (this.state) {
        case 'head':
        case 'trailers': {
          // A response without header lines ends in a single CRLF after its status line;
          // trailers may be empty: both end at the first empty line.
          const end = this.state === 'trailers' && chunk[0] === 13 && chunk[1] === 10 ? 0 : chunk.indexOf(CRLF_CRLF);
          const limit = MAX_HEAD_BYTES;
          if (end < 0) {
            if (chunk.length > limit) throw badResponse(this.state === 'head' ? 'head too large' : 'trailers too large');
            this.pending = chunk;
            return;
          }
          if (end > limit) throw badResponse('head too large');
          if (this.state === 'head') {
            this.onHead(chunk.toString('latin1', 0, end));
            chunk = chunk.subarray(end + 4);
          } else {
            const trailers = end === 0 ? {} : fields(chunk.toString('latin1', 0, end).split('\r\n'), 0);
            chunk = chunk.subarray(end === 0 ? 2 : end + 4);
            this.finish(trailers);
          }
          break;
        }
        case 'length':
          chunk = this.body(chunk);
          if (this.remaining === 0) this.finish({});
          break;
        case 'chunk-size': {
          const eol = chunk.indexOf('\r\n');
          if (eol < 0) {
            if (chunk.length > MAX_CHUNK_LINE) throw badResponse('chunk size line too long');
            this.pending = chunk;
            return;
          }
          const size = CHUNK_SIZE.exec(chunk.toString('latin1', 0, eol));
          if (!size) throw badResponse('chunk size');
          this.remaining = parseInt(size[1]!, 16);
          chunk = chunk.subarray(eol + 2);
          this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
          break;
        }
        case 'chunk-data':
          chunk = this.body(chunk);
          if (this.remaining === 0) this.state = 'chunk-end';
          break;
        case 'chunk-end': {
          if (chunk.length < 2) {
            if (chunk[0] !== 13) throw badResponse('chunk not followed by CRLF');
            this.pending = chunk;
            return;
          }
          if (chunk[0] !== 13 || chunk[1] !== 10) throw badResponse('chunk not followed by CRLF');
          chunk = chunk.subarray(2);
          this.state = 'chunk-size';
          break;
        }
        case 'until-close':
          this.events.data(chunk);
          return;
      }
    }
    const trailers = this.completed;
    if (trailers === undefined) return;
    this.completed = undefined;
    // Bytes past the end of the answer, before the next request: the connection is out of
    // step with its requests and carries nothing more.
    this.events.end(trailers, this.reusable && chunk.length === 0);
  }

  /** Hands on the body bytes still owed (up to `remaining`) and returns what follows them. */
  private body(chunk: Buffer): Buffer {
    const take = Math.min(this.remaining, chunk.length);
    this.remaining -= take;
    this.events.data(take === chunk.length ? chunk : chunk.subarray(0, take));
    return chunk.subarray(take);
  }

  /** The gateway closed the connection: ends a body delimited by the close, else throws. */
  closed(): void {
    if (this.state === 'until-close') {
      this.state = 'done';
      this.events.end({}, false);
      return;
    }
    if (this.state !== 'done') throw new ExchangeError('closed_early', 'the gateway closed the connection before the response was complete');
  }

  private onHead(text: string): void {
    const lines = text.split('\r\n');
    const status = STATUS_LINE.exec(lines[0]!);
    if (!status) throw badResponse('status line');
    const code = Number(status[2]);
    const headers = fields(lines, 1);
    if (code < 200) {
      // 101 answers an upgrade, which never takes this path.
      if (code === 101) throw badResponse('101 without an upgrade');
      this.events.informational(code, headers);
      return;
    }
    const connection = headers['connection'];
    const closing = connection !== undefined && tokens(connection).includes('close');
    const keepAlive = connection !== undefined && tokens(connection).includes('keep-alive');
    this.reusable = status[1] === '1' ? !closing : keepAlive && !closing;
    // The framing is read before the head is handed on: the receiver may change the fields.
    const framing = this.noBody || code === 204 || code === 304 ? this.bodiless(code, headers) : this.framing(headers);
    this.events.head(code, headers);
    if (framing === 'none') this.finish({});
    else if (framing === 'chunked') this.state = 'chunk-size';
    else if (framing === 'close') this.state = 'until-close';
    else if (framing === 0) this.finish({});
    else {
      this.remaining = framing;
      this.state = 'length';
    }
  }

  /**
   * An answer without a body (RFC 9112, 6.3: to a HEAD, a 204 or a 304). A gateway that
   * answers a HEAD as a GET, or frames a 204 or 304 as if a body followed, may send that
   * body after the answer, in a later read, where it would be taken for the next answer:
   * the connection is not trusted with another exchange. A HEAD's Content-Length is the
   * GET's and says nothing, so after any HEAD the connection goes.
   */
  private bodiless(code: number, headers: Fields): 'none' {
    const length = headers['content-length'];
    if (this.noBody || headers['transfer-encoding'] !== undefined || (code === 204 && length !== undefined)) this.reusable = false;
    return 'none';
  }

  /** How the body ends (RFC 9112, 6.3): chunked, at a length, or at the close. */
  private framing(headers: Fields): 'chunked' | 'close' | number {
    const coding = headers['transfer-encoding'];
    if (coding !== undefined) {
      // With both, Transfer-Encoding wins and the connection is not trusted again.
      if (headers['content-length'] !== undefined) this.reusable = false;
      if (tokens(coding).at(-1) === 'chunked') return 'chunked';
      this.reusable = false;
      return 'close';
    }
    const length = headers['content-length'];
    if (length !== undefined) return contentLength(length);
    this.reusable = false;
    return 'close';
  }

  private finish(trailers: Fields): void {
    this.state = 'done';
    this.completed = trailers;
  }
}

/**
 * Header lines from `from` on, as fields by lower-case name. With no prototype, as Node's
 * own: on a plain object a `constructor` or `__proto__` line found Object.prototype's and
 * failed the exchange.
 */
function fields(lines: string[], from: number): Fields {
  const out = Object.create(null) as Fields;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) throw badResponse('header line');
    const name = line.slice(0, colon);
    if (!FIELD_NAME.test(name)) throw badResponse('header name');
    // Not a regular expression: `[\t ]+$` is tried from every blank of a run inside the
    // value, and a 16 KiB head of blanks took about 100 ms of the event loop.
    const value = trimOws(line.slice(colon + 1));
    if (!FIELD_VALUE.test(value)) throw badResponse('header value');
    const key = name.toLowerCase();
    const had = out[key];
    if (had === undefined) out[key] = value;
    else if (typeof had === 'string') out[key] = [had, value];
    else had.push(value);
  }
  return out;
}

/** A list header's tokens; around each only spaces and tabs are blank, as Node's parser reads them (trim() also takes 0xA0). */
function tokens(value: string | string[]): string[] {
  return (typeof value === 'string' ? value : value.join(','))
    .split(',')
    .map((t) => trimOws(t).toLowerCase())
    .filter((t) => t !== '');
}

/** One length, or the same length repeated (a list of equal values is allowed, RFC 9110, 8.6). */
function contentLength(value: string | string[]): number {
  const values = tokens(value);
  if (values.length === 0 || values.some((v) => v !== values[0]) || !/^\d{1,15}$/.test(values[0]!)) throw badResponse('content-length');
  return Number(values[0]);
}
