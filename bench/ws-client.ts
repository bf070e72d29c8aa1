// Child process: opens N idle WebSockets from one loopback source address and holds them
// until told to stop. Opening is paced (a bounded number in flight) like real clients.
import { WebSocket } from 'ws';
import { IDENTITY_HEADERS } from './load.js';

const [url, countText, localAddress] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
const IN_FLIGHT = 64;
const sockets: WebSocket[] = [];
let opened = 0;
let failed = 0;
let next = 0;

function openOne(n: number): Promise<void> {
  // A user each, as many people's idle Control UIs are: one identity may hold only
  // limits.maxWebSocketsPerIdentity of them.
  const user = `user-${localAddress.replace(/\./g, '-')}-${n}`;
  const headers = { ...IDENTITY_HEADERS, 'x-auth-request-user': user, 'x-auth-request-email': `${user}@example.com` };
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, localAddress, handshakeTimeout: 10000 });
    ws.once('open', () => {
      opened++;
      sockets.push(ws);
      resolve();
    });
    ws.once('error', () => {
      failed++;
      resolve();
    });
  });
}

async function worker(): Promise<void> {
  while (next < count) {
    await openOne(next++);
  }
}

await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
process.send?.({ opened, failed });
process.once('SIGTERM', () => {
  for (const ws of sockets) ws.terminate();
  process.exit(0);
});
