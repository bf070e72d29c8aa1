// The head of a request to the gateway, checked line by line as it is written.
import { ExchangeError } from './errors.js';

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The request head for the gateway: the client's method and target byte for byte (the
 * assertion binds this exact target), the given header lines, a Host (`authority`, the
 * gateway URL's) if none came, and the body's framing (`codings`: the Transfer-Encoding of
 * a body sent chunked). The server's parser has already refused anything malformed from
 * the client; every line is checked again here, so a value that could split the head fails
 * the exchange with a `bad_request` failure instead of reaching the gateway. `Expect` is never passed on: the sidecar's
 * server answered the client's 100-continue itself, so the body comes either way.
 */
export function requestHead(method: string, target: string, headers: readonly string[], authority: string, codings: string | undefined): string {
  if (!TOKEN.test(method) || !/^[\x21-\x7e\x80-\xff]+$/.test(target)) throw badRequestHead('request line');
  let head = `${method} ${target} HTTP/1.1\r\n`;
  let hasHost = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name === 'expect') continue;
    if (name === 'host') hasHost = true;
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw badRequestHead(`header ${JSON.stringify(name)}`);
    head += `${name}: ${value}\r\n`;
  }
  if (!hasHost) head += `host: ${authority}\r\n`;
  if (codings !== undefined) {
    if (!FIELD_VALUE.test(codings)) throw badRequestHead('transfer coding');
    head += `transfer-encoding: ${codings}\r\n`;
  }
  return `${head}\r\n`;
}

function badRequestHead(what: string): ExchangeError {
  return new ExchangeError('bad_request', `a ${what} the gateway may not be sent`);
}
