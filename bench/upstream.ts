// Child process: the recording upstream (plain Node http + WebSocket echo) every path
// forwards to. It keeps the last few requests so the runner can check what arrived.
import { startRecordingUpstream } from '../test/support/upstream.js';

const upstream = await startRecordingUpstream(undefined, '127.0.0.1', { keep: 8 });
process.on('message', (message: { type: string }) => {
  if (message.type === 'last') process.send?.({ type: 'last', received: upstream.received.at(-1), upgrade: upstream.upgrades.at(-1) });
});
process.send?.({ type: 'ready', port: upstream.port });
process.once('SIGTERM', () => void upstream.close().then(() => process.exit(0)));
