// `node --import trusted-proxy-sidecar/guard <gateway>`: installs the guard before the
// gateway's code runs (docs/openclaw.md, "The guard"). Bad settings stop the gateway with
// every problem listed: a gateway that starts unguarded would fail open.
import { isMainThread } from 'node:worker_threads';
import type { IncomingMessage } from 'node:http';
import { clip } from '../logging/line-budget.js';
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

/** One line a second at most, with how many were left out: a flood must not fill the gateway's log. */
function rateLimitedLog() {
  let lastAt = 0;
  let suppressed = 0;
  return (event: string, error: string, req: IncomingMessage) => {
    const now = Date.now();
    if (now - lastAt < 1000) {
      suppressed++;
      return;
    }
    lastAt = now;
    const line = { msg: 'trusted-proxy-sidecar guard refused', event, error, method: req.method, path: clip((req.url ?? '').split('?')[0]!), peer: req.socket.remoteAddress, suppressed };
    suppressed = 0;
    process.stderr.write(`${JSON.stringify(line)}\n`);
  };
}
