// The parser of the gateway's answers, against Node's own HTTP client (llhttp) as the
// reference: generated responses (status, header lines, a body by length, chunked with
// trailers, or to the close, cut into arbitrary pieces) must read the same through both;
// and each malformed form a lenient reader could take two ways is refused.
import http from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import fc from 'fast-check';
import { ResponseParser, type Fields } from '../../../src/gateway/response-parser.js';

interface Read {
  informational: number[];
  status?: number;
  headers?: Fields;
  body: string;
  trailers?: Fields;
  reusable?: boolean;
}

/** Feeds `pieces` one after the other; the connection closes after them when `close`. */
function parse(pieces: Buffer[], method = 'GET', close = true): Read {
  const read: Read = { informational: [], body: '' };
  const parser = new ResponseParser({
    informational: (status) => read.informational.push(status),
    head: (status, headers) => {
      read.status = status;
      read.headers = { ...headers };
    },
    data: (chunk) => (read.body += chunk.toString('latin1')),
    end: (trailers, reusable) => {
      read.trailers = trailers;
      read.reusable = reusable;
    },
  });
  parser.expect(method);
  for (const piece of pieces) parser.feed(piece);
  if (close && read.trailers === undefined) parser.closed();
  return read;
}

function pieces(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...at, bytes.length]) {
    if (cut > from) out.push(bytes.subarray(from, cut));
    from = cut;
  }
  return out;
}

let server: Server;
let nextAnswer: Buffer = Buffer.alloc(0);
beforeAll(async () => {
  server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end(nextAnswer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

/** Raw field lines by lower-case name, a repeated name's values in a list, as the parser keeps them. */
function fold(raw: string[]): Fields {
  const fields = Object.create(null) as Fields;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const had = fields[name];
    fields[name] = had === undefined ? raw[i + 1]! : [...(typeof had === 'string' ? [had] : had), raw[i + 1]!];
  }
  return fields;
}

/** What Node's client reads from the same bytes (the raw server closes after them). */
function reference(bytes: Buffer): Promise<Read> {
  nextAnswer = bytes;
  return new Promise((resolve, reject) => {
    const read: Read = { informational: [], body: '' };
    const req = http.get({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', agent: false }, (res) => {
      read.status = res.statusCode;
      read.headers = fold(res.rawHeaders);
      res.setEncoding('latin1');
      res.on('data', (s: string) => (read.body += s));
      res.on('end', () => {
        read.trailers = fold(res.rawTrailers);
        resolve(read);
      });
      res.on('error', reject);
    });
    req.on('information', (info) => read.informational.push(info.statusCode));
    req.on('error', reject);
  });
}

const token = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/).filter((n) => !/^(content-length|transfer-encoding|connection|trailer|keep-alive)$/i.test(n));
// Blanks (spaces, tabs) around a value are not part of it; inside, they are.
const blanks = fc.stringMatching(/^[\t ]{0,3}$/);
const value = fc
  .tuple(blanks, fc.stringMatching(/^[\x21-\x7e]([\t\x20-\x7e]{0,18}[\x21-\x7e])?$/), blanks)
  .map(([before, inner, after]) => before + inner + after);
const bodyText = fc.string({ maxLength: 300 });
const response = fc.record({
  informational: fc.array(fc.constantFrom(100, 102, 103), { maxLength: 2 }),
  status: fc.constantFrom(200, 201, 202, 206, 301, 400, 404, 418, 500, 503),
  headers: fc.array(fc.tuple(token, value), { maxLength: 6 }),
  framing: fc.constantFrom('length', 'chunked', 'close'),
  body: bodyText,
  chunks: fc.array(fc.nat({ max: 299 }), { maxLength: 5 }),
  trailers: fc.array(fc.tuple(token, value), { maxLength: 2 }),
  cuts: fc.array(fc.nat(), { maxLength: 8 }),
});

type Generated = typeof response extends fc.Arbitrary<infer T> ? T : never;

function render(r: Generated): Buffer {
  let text = r.informational.map((s) => `HTTP/1.1 ${s} Info\r\n${s === 103 ? 'Link: </a.css>; rel=preload\r\n' : ''}\r\n`).join('');
  text += `HTTP/1.1 ${r.status} Reason Phrase\r\n`;
  for (const [n, v] of r.headers) text += `${n}: ${v}\r\n`;
  if (r.framing === 'length') text += `Content-Length: ${Buffer.byteLength(r.body, 'latin1')}\r\n\r\n${r.body}`;
  else if (r.framing === 'close') text += `Connection: close\r\n\r\n${r.body}`;
  else {
    text += 'Transfer-Encoding: chunked\r\n\r\n';
    const cuts = [...new Set(r.chunks.filter((c) => c > 0 && c < r.body.length))].sort((a, b) => a - b);
    let from = 0;
    for (const cut of [...cuts, r.body.length]) {
      if (cut > from) text += `${(cut - from).toString(16)};ext=1\r\n${r.body.slice(from, cut)}\r\n`;
      from = cut;
    }
    text += '0\r\n';
    for (const [n, v] of r.trailers) text += `${n}: ${v}\r\n`;
    text += '\r\n';
  }
  return Buffer.from(text, 'latin1');
}

describe("reads what Node's client reads", () => {
  test('generated responses, cut anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(response, async (r) => {
        const bytes = render(r);
        const ours = parse(pieces(bytes, r.cuts));
        const theirs = await reference(bytes);
        expect(ours.status).toBe(theirs.status);
        expect(ours.headers).toEqual(theirs.headers);
        expect(ours.body).toBe(theirs.body);
        expect(ours.trailers).toEqual(theirs.trailers);
        expect(ours.informational).toEqual(theirs.informational);
        expect(ours.reusable).toBe(r.framing !== 'close');
      }),
      {
        numRuns: 150,
        examples: [
          // Found by a run: a trailer name given twice, in two cases; both lines are kept.
          [
            {
              informational: [],
              status: 200,
              headers: [
                ['x-a', '1'],
                ['X-A', '2'],
              ],
              framing: 'chunked',
              body: 'ab',
              chunks: [1],
              trailers: [
                ['b', '!'],
                ['B', '?'],
              ],
              cuts: [],
            },
          ],
          // Names of Object.prototype's members, once and twice, in the head and the trailers.
          [
            {
              informational: [],
              status: 200,
              headers: [
                ['Constructor', 'a'],
                ['__proto__', 'b'],
                ['__proto__', 'c'],
              ],
              framing: 'chunked',
              body: 'ab',
              chunks: [],
              trailers: [
                ['constructor', 'd'],
                ['constructor', 'e'],
              ],
              cuts: [],
            },
          ],
        ],
      },
    );
  });
});

describe('a value with a run of blanks inside', () => {
  // The run fills the 16 KiB a head may take: trimming it with `[\t ]+$` took about 100 ms.
  const run = ' \t'.repeat(8000);
  test("is read whole, as Node's client reads it", async () => {
    const bytes = Buffer.from(`HTTP/1.1 200 OK\r\nX-Echo:  a${run}b \t\r\nContent-Length: 0\r\n\r\n`, 'latin1');
    const ours = parse([bytes]);
    expect(ours.headers!['x-echo']).toBe(`a${run}b`);
    expect(ours.headers).toEqual((await reference(bytes)).headers);
  });
});

describe('a byte only String.prototype.trim() takes for a blank', () => {
  test("0xA0 after chunked: not chunked, the body runs to the close, as Node's client reads it", async () => {
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\xa0\r\n\r\n2\r\nok\r\n0\r\n\r\n', 'latin1');
    const ours = parse([bytes]);
    expect(ours.body).toBe('2\r\nok\r\n0\r\n\r\n');
    expect(ours.body).toBe((await reference(bytes)).body);
  });
});

describe('where a response ends', () => {
  const one = (text: string, method = 'GET', close = false) => parse([Buffer.from(text, 'latin1')], method, close);

  test('a HEAD answer, a 204 and a 304 have no body, whatever their length says', () => {
    expect(one('HTTP/1.1 204 No Content\r\n\r\n')).toMatchObject({ status: 204, body: '', reusable: true });
    expect(one('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n')).toMatchObject({ status: 304, body: '', reusable: true });
    // A body may still follow in a later read, where it would be taken for the next answer.
    expect(one('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'HEAD')).toMatchObject({ status: 200, body: '', reusable: false });
    expect(one('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n')).toMatchObject({ status: 204, body: '', reusable: false });
    expect(one('HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ status: 204, body: '', reusable: false });
    expect(one('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ status: 304, body: '', reusable: false });
  });

  test('no length and no chunking: the body runs to the close and the connection is not used again', () => {
    const r = parse([Buffer.from('HTTP/1.1 200 OK\r\n\r\nab'), Buffer.from('cd')], 'GET', true);
    expect(r).toMatchObject({ body: 'abcd', reusable: false });
  });

  test('Transfer-Encoding beside Content-Length: the chunking wins and the connection is given up', () => {
    const r = one('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    expect(r).toMatchObject({ body: 'ok', reusable: false });
  });

  test('Connection: close, or an HTTP/1.0 answer without keep-alive, is not reused', () => {
    expect(one('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').reusable).toBe(false);
    expect(one('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').reusable).toBe(false);
    expect(one('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').reusable).toBe(true);
  });

  test('bytes after a complete answer put the connection out of step: the answer stands, the connection goes', () => {
    expect(one('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n')).toMatchObject({ body: 'ok', reusable: false });
  });

  test('the connection closing mid-answer is an error, not a short body', () => {
    expect(() => parse([Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab')], 'GET', true)).toThrow(
      expect.objectContaining({ failure: 'closed_early' }),
    );
    expect(() => parse([Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab')], 'GET', true)).toThrow(
      expect.objectContaining({ failure: 'closed_early' }),
    );
  });
});

describe('refused: forms a lenient reader could take two ways', () => {
  const MALFORMED: [string, string][] = [
    ['no status line', 'HTTP/1.1 OK\r\n\r\n'],
    ['HTTP/2 in a status line', 'HTTP/2 200 OK\r\n\r\n'],
    ['a two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['a folded header line', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n'],
    ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
    ['a bare LF inside a line', 'HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 5\r\n\r\n'],
    ['a bare CR inside a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n'],
    ['two different lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'],
    ['a signed length', 'HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab'],
    ['a chunk size that is not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['a chunk size past a safe integer', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n'],
    ['a chunk not followed by CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n'],
    ['a 101 to a request that asked for no upgrade', 'HTTP/1.1 101 Switching Protocols\r\n\r\n'],
    ['a head over 16 KiB', `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`],
  ];
  test.each(MALFORMED)('%s', (_name, text) => {
    expect(() => parse([Buffer.from(text, 'latin1')], 'GET', false)).toThrow(expect.objectContaining({ failure: 'bad_response' }));
  });

  test('the same head over 16 KiB in small pieces is refused before it is all in', () => {
    const read = { heads: 0 };
    const parser = new ResponseParser({ informational: () => undefined, head: () => read.heads++, data: () => undefined, end: () => undefined });
    parser.expect('GET');
    parser.feed(Buffer.from('HTTP/1.1 200 OK\r\nX-Big: '));
    expect(() => {
      for (let i = 0; i < 40; i++) parser.feed(Buffer.alloc(1024, 0x61));
    }).toThrow(expect.objectContaining({ failure: 'bad_response' }));
    expect(read.heads).toBe(0);
  });
});
