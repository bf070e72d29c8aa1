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

function openOne(): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: IDENTITY_HEADERS, localAddress, handshakeTimeout: 10000 });
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
    next++;
    await openOne();
  }
}

await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
process.send?.({ opened, failed });
process.once('SIGTERM', () => {
  for (const ws of sockets) ws.terminate();
  process.exit(0);
});
