// `node --import trusted-proxy-sidecar/guard <gateway>`: installs the guard before the
// gateway's code runs (docs/openclaw.md, "The guard"). Bad settings stop the gateway with
// every problem listed: a gateway that starts unguarded would fail open.
import { isMainThread } from 'node:worker_threads';
import type { IncomingMessage } from 'node:http';
import { clip, LineBudget } from '../logging/line-budget.js';
import { installGuard, verifyOptionsOf } from './guard.js';
import { guardOptions } from './options.js';

const EX_CONFIG = 78;

const result = guardOptions(process.env);
const problems = result.ok ? keyProblems(result.options) : result.problems;
if (!result.ok || problems.length > 0) {
  process.stderr.write(`trusted-proxy-sidecar guard: not starting the gateway:\n${problems.map((p) => `  ${p}\n`).join('')}`);
  process.exit(EX_CONFIG);
}
installGuard(result.options, { refused: rateLimitedLog() });
if (isMainThread) {
  process.stderr.write(`trusted-proxy-sidecar guard: requests on port ${[...result.options.ports].join(', ')} need a valid assertion\n`);
}

function keyProblems(options: Parameters<typeof verifyOptionsOf>[0]): string[] {
  if (options.jwks !== '') return [];
  const { keys } = verifyOptionsOf(options);
  return keys && keys.size > 0 ? [] : [`TRUSTED_PROXY_GUARD_KEYS_DIR: no ${options.algorithm} key in ${options.keysDir}`];
}

/**
 * Refusals on stderr within a line budget per peer and for all peers together, as the
 * sidecar's (logging/line-budget.ts), with how many of that peer's were held back: a flood
 * must not fill the gateway's log, nor one flooding peer hide another's refusals.
 */
function rateLimitedLog() {
  const budget = new LineBudget({ perPeer: 1, peerBurst: 5, total: 10, totalBurst: 20, maxPeers: 1024 }, Date.now());
  return (event: string, error: string, req: IncomingMessage) => {
    const peer = req.socket.remoteAddress ?? '';
    const suppressed = budget.take(peer, Date.now());
    if (suppressed === undefined) return;
    const line = { msg: 'trusted-proxy-sidecar guard refused', event, error, method: req.method, path: clip((req.url ?? '').split('?')[0]!), peer, suppressed };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  };
}
