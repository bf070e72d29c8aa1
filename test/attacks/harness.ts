// Attack tests send exact bytes to a real in-process sidecar in front of the recording
// upstream, then assert on what the upstream (the gateway's place) received.
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

export interface Stack {
  upstream: RecordingUpstream;
  sc: TestSidecar;
  /** Sends raw bytes; resolves with the status and the whole reply. */
  /** `from`: the local address to send from (any 127.x works without setup). */
  send(bytes: string | Buffer, host?: string, timeoutMs?: number, from?: string): Promise<{ status: number; reply: string }>;
  stop(): Promise<void>;
}

export async function startStack(overrides: Parameters<typeof startSidecar>[1] = {}): Promise<Stack> {
  const upstream = await startRecordingUpstream();
  let sc: TestSidecar;
  try {
    sc = await startSidecar(upstream.url, overrides);
  } catch (err) {
    await upstream.close();
    throw err;
  }
  return {
    upstream,
    sc,
    send: async (bytes, host, timeoutMs, from) => {
      const reply = await rawRequest(sc.port, bytes, host, timeoutMs, from);
      return { status: statusOf(reply), reply };
    },
    stop: async () => {
      try {
        await sc.stop();
      } finally {
        await upstream.close();
      }
    },
  };
}

/**
 * One HTTP/1.1 request, byte for byte: header lines are written exactly as given, then
 * `Connection: close` (unless `keepAlive`) so the reply ends with the connection.
 */
export function http11(
  lines: readonly (readonly [string, string])[],
  opts: { method?: string; target?: string; body?: string; keepAlive?: boolean } = {},
): string {
  const head = [...lines, ...(opts.keepAlive ? [] : [['Connection', 'close'] as const])].map(([n, v]) => `${n}: ${v}\r\n`).join('');
  return `${opts.method ?? 'GET'} ${opts.target ?? '/'} HTTP/1.1\r\n${head}\r\n${opts.body ?? ''}`;
}

export const HOST = ['Host', 'app.example'] as const;
export const ALICE = ['X-Auth-Request-Email', 'alice@example.com'] as const;
/** A token-shaped forgery: it must never reach the gateway. */
export const FORGED = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
