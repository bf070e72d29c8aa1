// Found by the corpus (class 13, h2c cases): the sidecar relayed any Upgrade to the
// gateway. A gateway that accepts h2c answers 101 and the connection becomes a tunnel in
// which later requests reach it unchecked (h2c smuggling). Only WebSockets pass now.
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';

const seen: string[] = [];
const sockets = new Set<Socket>();
// A gateway that switches to anything it is asked to and records every byte after that.
const gateway = createServer((s) => {
  sockets.add(s);
  let switched = false;
  s.on('data', (d: Buffer) => {
    const text = d.toString('latin1');
    seen.push(switched ? `tunnelled: ${text}` : text.split('\r\n')[0]!);
    const upgrade = /^upgrade: *(\S+)/im.exec(text)?.[1];
    if (!switched && upgrade) {
      switched = true;
      s.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n\r\n`);
    } else if (!switched) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  });
});
let sc: TestSidecar;

beforeAll(async () => {
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', resolve));
  sc = await startSidecar(`http://127.0.0.1:${(gateway.address() as AddressInfo).port}`);
});
afterAll(async () => {
  await sc.stop();
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => gateway.close(() => resolve()));
});

test.each(['Upgrade, HTTP2-Settings', 'close'])('Upgrade: h2c (Connection: %s) is refused and never reaches the gateway', async (connection) => {
  const reply = await rawRequest(
    sc.port,
    'GET / HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\nUpgrade: h2c\r\n' +
      `HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: ${connection}\r\n\r\nGET /admin HTTP/1.1\r\nHost: gw\r\n\r\n`,
    '127.0.0.1',
    1500,
  );
  expect(statusOf(reply)).toBe(400);
  expect(seen).toEqual([]);
});
