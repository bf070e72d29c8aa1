// The connection pool towards the gateway. Keep-alive is what makes a Node proxy fast
// (about 4x over a connection per request); the benchmark's bare forwarder uses this too.
import { Agent } from 'undici';
import type { Config } from '../config/schema.js';

type Upstream = Config['upstream'];

export function createUpstreamPool(upstream: Upstream): Agent {
  return new Agent({
    connections: upstream.maxSockets,
    // One request at a time per connection: a slow answer never holds up another's.
    pipelining: 1,
    // HTTP/1.1 only: the hop-by-hop handling on both sides is written for it.
    allowH2: false,
    connect: { timeout: upstream.connectTimeoutSeconds * 1000 },
  });
}

/**
 * The pool's limits are fixed when it is made, so a reload that changes them swaps in a
 * new pool; the old one finishes the requests it carries and then closes.
 */
export class UpstreamPool {
  private pool: Agent;
  private settings: Upstream;

  constructor(upstream: Upstream) {
    this.settings = upstream;
    this.pool = createUpstreamPool(upstream);
  }

  get dispatcher(): Agent {
    return this.pool;
  }

  update(upstream: Upstream): void {
    const { maxSockets, connectTimeoutSeconds } = this.settings;
    this.settings = upstream;
    if (upstream.maxSockets === maxSockets && upstream.connectTimeoutSeconds === connectTimeoutSeconds) return;
    const old = this.pool;
    this.pool = createUpstreamPool(upstream);
    void old.close();
  }

  close(): void {
    void this.pool.destroy();
  }
}
