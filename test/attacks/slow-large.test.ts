// header-attacks.md class 14: a client that drips its headers is cut off by the headers
// timeout, and a huge body to a refused route is not read to its end; meanwhile the
// sidecar keeps serving everyone else.
import { connect } from 'node:net';
import { ALICE, HOST, http11, startStack, type Stack } from './harness.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ listen: { headersTimeoutSeconds: 1 } });
});
afterAll(async () => {
  await stack?.stop();
});

async function servesOthers(): Promise<void> {
  const { status } = await stack.send(http11([HOST, ALICE]));
  expect(status).toBe(200);
}

test('slow headers: cut off with 408 by the headers timeout while others are served', async () => {
  const outcome = await new Promise<{ reply: string; closed: boolean; linesSent: number }>((resolve) => {
    const chunks: Buffer[] = [];
    let linesSent = 0;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect({ host: '127.0.0.1', port: stack.sc.port }, () => {
      socket.write('GET / HTTP/1.1\r\nHost: app.example\r\n');
      // One header line every 200 ms, for at most 15 s (the timeout is 1 s).
      const drip = () => {
        if (socket.destroyed || linesSent >= 75) return finish(false);
        socket.write(`X-Drip-${linesSent++}: x\r\n`);
        timer = setTimeout(drip, 200);
      };
      drip();
    });
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), closed, linesSent });
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    void servesOthers();
  });
  expect(outcome.closed).toBe(true);
  expect(outcome.linesSent).toBeLessThan(75);
  expect(outcome.reply).toMatch(/^HTTP\/1\.1 408 /);
  expect(stack.upstream.received.every((r) => r.headers['x-drip-0'] === undefined)).toBe(true);
  await servesOthers();
});

const GIB = 1024 ** 3;
/** Streams a 1 GiB body after the head; stops at the first reply or close, or at 256 MiB. */
function hugeBody(head: string): Promise<{ reply: string; sent: number }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(1 << 20, 0x61);
    const chunks: Buffer[] = [];
    let sent = 0;
    let done = false;
    const socket = connect({ host: '127.0.0.1', port: stack.sc.port }, () => {
      socket.write(`${head}Content-Length: ${GIB}\r\n\r\n`);
      pump();
    });
    const finish = () => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ reply: Buffer.concat(chunks).toString('latin1'), sent });
    };
    function pump(): void {
      while (!done && !socket.destroyed && sent < 256 * chunk.length) {
        sent += chunk.length;
        if (!socket.write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
      if (sent >= 256 * chunk.length) finish();
    }
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', finish);
    socket.on('error', finish);
  });
}

test.each([
  ['no identity', 'POST /upload HTTP/1.1\r\nHost: app.example\r\n', 401],
  ['an alias for an identity', 'POST /upload HTTP/1.1\r\nHost: app.example\r\nX_Auth_Request_Email: admin@example.com\r\n', 401],
])('a huge body with %s is refused without being read to its end', async (_what, head, status) => {
  const before = stack.upstream.received.length;
  const { reply, sent } = await hugeBody(head);
  expect(reply).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(reply.toLowerCase()).toContain('connection: close');
  // The connection ends long before the client could push the whole body.
  expect(sent).toBeLessThan(256 * 2 ** 20);
  expect(stack.upstream.received).toHaveLength(before);
  await servesOthers();
});
