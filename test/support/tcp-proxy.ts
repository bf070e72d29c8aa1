// A TCP relay on loopback that a test can cut: every open connection reset and new ones
// refused until it is restored. Put between a client and a real server, it makes faults
// the server will not make on demand (a dropped watch, an unreachable API) on the wire.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Connections accepted so far (refused ones included). */
  readonly accepted: number;
  /** Resets every relayed connection and refuses new ones. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<Socket>();
  let down = false;
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    if (down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: targetHost, port: targetPort });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.once('close', () => open.delete(s));
    }
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get accepted() {
      return accepted;
    },
    cut: () => {
      down = true;
      for (const s of open) s.resetAndDestroy();
    },
    restore: () => {
      down = false;
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
