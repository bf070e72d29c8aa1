// A client that vanishes in the middle of a proxied WebSocket (a reset, or a browser tab
// closed while the gateway is still sending) must cost only its own connection: the
// proxy library raises such socket errors as events, and an unhandled one ends the process.
import { connect } from 'node:net';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { waitFor } from '../../harness/wait.js';

let upstream: RecordingUpstream;
let sc: TestSidecar;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url);
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
  process.off('uncaughtException', onUncaught);
});

test('a client resetting an open WebSocket leaves the sidecar serving', async () => {
  const socket = connect({ host: '127.0.0.1', port: sc.port });
  await new Promise((resolve) => socket.once('connect', resolve));
  let reply = '';
  socket.on('data', (c: Buffer) => (reply += c.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(
    'GET /ws HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
      'X-Auth-Request-Email: alice@example.com\r\n\r\n',
  );
  await waitFor(() => reply.startsWith('HTTP/1.1 101'), 'the upgrade');
  socket.resetAndDestroy();
  await waitFor(() => sc.sidecar.websockets.size === 0, 'the sidecar to drop the WebSocket');

  const res = await fetch(`${sc.url}/after`, { headers: { 'x-auth-request-email': 'alice@example.com' } });
  expect(res.status).toBe(200);
  expect(uncaught).toEqual([]);
});
