// Child process: the recording upstream (plain Node http + WebSocket echo) every path
// forwards to. It counts requests and keeps the last few, so the runner can check that
// every measured request really arrived, and with what.
import { startRecordingUpstream } from '../harness/upstream.js';

let count = 0;
const upstream = await startRecordingUpstream(
  (_req, res) => {
    count++;
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  },
  '127.0.0.1',
  { keep: 8 },
);
process.on('message', (message: { type: string }) => {
  if (message.type === 'stats') process.send?.({ type: 'stats', count, last: upstream.received.at(-1) });
});
process.send?.({ type: 'ready', port: upstream.port });
process.once('SIGTERM', () => void upstream.close().then(() => process.exit(0)));
