// In-process micro-benchmarks of the hot path's pure parts: one decision (source,
// identity, policy, sanitise, sign) and one assertion signature.
import { AssertionSigner, randomId } from '../src/assertion/sign.js';
import type { AssertionClaims } from '../src/assertion/claims.js';
import { configSchema } from '../src/config/schema.js';
import { decide, type DecisionContext, type RequestFacts } from '../src/decision/decide.js';
import { compileRules } from '../src/decision/rules.js';
import { TrustedSet } from '../src/trust/trusted-set.js';
import { IDENTITY_HEADERS } from './load.js';

export interface Rate {
  operations: number;
  seconds: number;
  perSecond: number;
}

/** Runs `op` in batches for about `seconds`, after a short warm-up; one thread. */
export function measure(op: (i: number) => unknown, seconds: number, batch = 1000): Rate {
  let sink: unknown;
  const warmUntil = performance.now() + 200;
  for (let i = 0; performance.now() < warmUntil; i++) sink = op(i);
  let operations = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    for (let i = 0; i < batch; i++) sink = op(operations + i);
    operations += batch;
  }
  const elapsed = (performance.now() - started) / 1000;
  if (sink === undefined) throw new Error('benchmark produced nothing');
  return { operations, seconds: elapsed, perSecond: operations / elapsed };
}

const SECRET = Buffer.alloc(32, 11);

export function decisions(seconds: number): Rate {
  const config = configSchema.parse({
    trust: { allowLoopback: true, cidrs: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] },
    identity: { userHeader: 'x-auth-request-user', emailHeader: 'x-auth-request-email', groupsHeader: 'x-auth-request-groups' },
    gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin'] } } },
  });
  const ctx: DecisionContext = {
    rules: compileRules(config),
    trusted: new TrustedSet(config.trust.cidrs.map((cidr) => ({ cidr, source: 'static' })), true),
    signer: new AssertionSigner('bench-1', SECRET),
    nowMs: Date.now(),
    newId: randomId,
  };
  const rawHeaders = Object.entries(IDENTITY_HEADERS).flat();
  rawHeaders.push('Connection', 'keep-alive');
  const facts: RequestFacts = { mode: 'inline', peer: '10.1.2.3', tls: false, method: 'GET', target: '/api/v1/sessions?limit=20', rawHeaders };
  if (!decide(facts, ctx).ok) throw new Error('the benchmark request is refused');
  return measure(() => decide(facts, ctx), seconds);
}

export function signs(seconds: number): Rate {
  const signer = new AssertionSigner('bench-1', SECRET);
  const iat = Math.floor(Date.now() / 1000);
  const claims: AssertionClaims = {
    iss: 'trusted-proxy-sidecar',
    aud: 'openclaw-gateway',
    sub: 'alice',
    email: 'alice@example.com',
    groups: ['staff', 'admins'],
    iat,
    nbf: iat,
    exp: iat + 30,
    jti: '',
    cip: '203.0.113.7',
    htm: 'GET',
    htu: 'https://gateway.example.com/api/v1/sessions',
  };
  // Every signature is over different claims (a fresh jti), as in real traffic.
  return measure(() => signer.sign({ ...claims, jti: randomId() }), seconds);
}
