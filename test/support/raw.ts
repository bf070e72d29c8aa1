// Raw-socket requests: attacks must reach the sidecar byte for byte, not as an HTTP
// client would normalise them.
import { connect } from 'node:net';

export function rawRequest(port: number, bytes: string | Buffer, host = '127.0.0.1', timeoutMs = 3000, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port, localAddress }, () => socket.write(bytes));
    const done = () => {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    };
    socket.setTimeout(timeoutMs, done);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', (err) => (chunks.length > 0 ? done() : reject(err)));
  });
}

/** The status code of the first response in a raw reply. */
export function statusOf(reply: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(reply);
  return m ? Number(m[1]) : 0;
}
