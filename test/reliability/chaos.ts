// The connection-level classes of the attack corpus. The byte-level classes (0–14) are
// requests in test/reliability/corpus/*.json; these are what a client does with the connection
// itself, so each case is a path, a stage the client brings the connection to, and an act
// at that stage. test/reliability/chaos.test.ts runs every case against the real sidecar
// process; none may end the process, keep other clients waiting past a bound, or leave a
// descriptor behind.

/** Where a case's connection goes, and what it asks for. */
export interface ChaosPath {
  readonly name: string;
  /** `untrusted`: from an address outside the trusted set. */
  readonly from: 'trusted' | 'untrusted';
  readonly port: 'data' | 'admin';
  /** The request head, up to (not including) the blank line; {ID} is the case's id. */
  readonly head: string;
  readonly stages: readonly Stage[];
}

export type Stage =
  /** Connected, nothing sent. */
  | 'before-head'
  /** Half of the request head sent. */
  | 'mid-head'
  /** The whole head sent; the answer is pending (held upstream) or under way. */
  | 'after-head'
  /** The sidecar's answer (a refusal, or a forward-auth grant) has been written. */
  | 'after-refusal'
  /** A head declaring a 1,000-byte body, and 10 bytes of it. */
  | 'mid-body'
  /** A WebSocket switched (101). */
  | 'after-101'
  /** Part of a 64 MiB response received. */
  | 'mid-response'
  /** Waiting for an upstream connection while the pool is full. */
  | 'queued';

export type Act =
  /** A TCP reset. */
  | 'rst'
  /** The client ends its side (FIN) and keeps reading. */
  | 'fin'
  /** The client does nothing more and keeps reading. */
  | 'stall'
  /** The client reads nothing from the start and never closes. */
  | 'never-read';

export const ACTS: readonly Act[] = ['rst', 'fin', 'stall', 'never-read'];

const ALICE = 'X-Auth-Request-Email: alice@example.com\r\n';
const WS = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const FA = 'X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /app\r\n';

export const PATHS: readonly ChaosPath[] = [
  {
    name: 'inline',
    from: 'trusted',
    port: 'data',
    head: `GET /hold/{ID} HTTP/1.1\r\nHost: gw\r\n${ALICE}`,
    stages: ['before-head', 'mid-head', 'after-head', 'mid-body', 'queued'],
  },
  { name: 'inline download', from: 'trusted', port: 'data', head: `GET /big HTTP/1.1\r\nHost: gw\r\n${ALICE}`, stages: ['mid-response'] },
  { name: 'inline upgrade', from: 'trusted', port: 'data', head: `GET /ws HTTP/1.1\r\nHost: gw\r\n${ALICE}${WS}`, stages: ['mid-head', 'after-101'] },
  {
    name: 'inline upgrade, gateway sending',
    from: 'trusted',
    port: 'data',
    head: `GET /ws-flood HTTP/1.1\r\nHost: gw\r\n${ALICE}${WS}`,
    stages: ['after-101'],
  },
  {
    name: 'forward-auth',
    from: 'trusted',
    port: 'data',
    head: `GET /forward-auth HTTP/1.1\r\nHost: gw\r\n${ALICE}${FA}`,
    stages: ['mid-head', 'after-refusal', 'mid-body'],
  },
  {
    name: 'forward-auth upgrade',
    from: 'trusted',
    port: 'data',
    head: `GET /forward-auth HTTP/1.1\r\nHost: gw\r\n${ALICE}${FA}${WS}`,
    stages: ['after-refusal'],
  },
  {
    name: 'refusal: untrusted source',
    from: 'untrusted',
    port: 'data',
    head: `GET /x HTTP/1.1\r\nHost: gw\r\n${ALICE}`,
    stages: ['before-head', 'mid-head', 'after-refusal', 'mid-body'],
  },
  { name: 'refusal: no identity', from: 'trusted', port: 'data', head: `GET /x HTTP/1.1\r\nHost: gw\r\n`, stages: ['after-refusal', 'mid-body'] },
  { name: 'refusal: malformed', from: 'trusted', port: 'data', head: `GET /x HTTP/1.1\r\nHost: gw\r\nBad Header Line\r\n`, stages: ['after-refusal'] },
  { name: 'refusal: upgrade', from: 'trusted', port: 'data', head: `GET /ws HTTP/1.1\r\nHost: gw\r\n${WS}`, stages: ['after-refusal'] },
  { name: 'refusal: untrusted upgrade', from: 'untrusted', port: 'data', head: `GET /ws HTTP/1.1\r\nHost: gw\r\n${ALICE}${WS}`, stages: ['after-refusal'] },
  {
    name: 'refusal: body over the maximum',
    from: 'trusted',
    port: 'data',
    head: `POST /upload HTTP/1.1\r\nHost: gw\r\n${ALICE}Content-Length: 2000000\r\n`,
    stages: ['after-refusal'],
  },
  { name: 'admin', from: 'trusted', port: 'admin', head: `GET /metrics HTTP/1.1\r\nHost: admin\r\n`, stages: ['before-head', 'mid-head', 'after-head'] },
];

export interface ChaosCase {
  readonly id: string;
  readonly path: ChaosPath;
  readonly stage: Stage;
  readonly act: Act;
  /**
   * What the sidecar must do with the connection: close it within the bound, or keep it
   * (an idle WebSocket is a WebSocket: it may stay open as long as both ends want).
   */
  readonly expect: 'closed' | 'kept';
}

export function chaosCases(): ChaosCase[] {
  const cases: ChaosCase[] = [];
  for (const path of PATHS) {
    for (const stage of path.stages) {
      for (const act of ACTS) {
        // After a 101 a client that waits, or a reader of a gateway that sends nothing, holds
        // an idle WebSocket; a gateway sending to a client that never reads is a stall.
        const kept = stage === 'after-101' && (act === 'stall' || (act === 'never-read' && path.name === 'inline upgrade'));
        const id = `${path.name}/${stage}/${act}`.replace(/[^a-z0-9/]+/g, '-');
        cases.push({ id, path, stage, act, expect: kept ? 'kept' : 'closed' });
      }
    }
  }
  return cases;
}
