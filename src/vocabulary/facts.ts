// What the I/O shell knows of a request, as every stage of the decision reads it. The
// stages (request, identity, policy, ...) and the decision import this and refusals.ts
// downward; neither imports a stage.
import type { TlsCertificate } from '../trust/source.js';

export type Mode = 'inline' | 'forward-auth';

/** What the I/O shell knows of a request. */
export interface RequestFacts {
  readonly mode: Mode;
  /** The socket's peer address: the only source of truth for who is talking. */
  readonly peer: string;
  readonly tls: boolean;
  /** The TLS connection's client certificate, when listen.clientCAFile asks for one. */
  readonly tlsCertificate?: TlsCertificate;
  readonly method: string;
  /** The request target as received (origin-form). */
  readonly target: string;
  readonly rawHeaders: readonly string[];
  /**
   * The connection asked to switch protocols (Upgrade with `Connection: upgrade`). An
   * Upgrade header without it is only a hop-by-hop header of a plain request, and is
   * stripped as one.
   */
  readonly upgrade?: boolean;
}
