// In-process micro-benchmarks of the hot path's pure parts: one inline decision (source,
// request, identity, policy, assertion, upstream headers), one assertion signature, and the
// bookkeeping the limits add to every inline request.
import { createPrivateKey } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { newKeyFile } from '../src/assertion/keys.js';
import type { Algorithm } from '../src/config/schema.js';
import { AssertionSigner, randomId } from '../src/assertion/sign.js';
import type { AssertionClaims } from '../src/assertion/claims.js';
import { configSchema } from '../src/config/schema.js';
import { decide, type DecisionContext } from '../src/decision/decide.js';
import { upstreamHeaders } from '../src/decision/gateway-headers.js';
import type { RequestFacts } from '../src/vocabulary/facts.js';
import { compileRules } from '../src/decision/rules.js';
import { trackResponse } from '../src/proxy/in-flight.js';
import { PerKeyLimit, UpstreamSlots } from '../src/proxy/limits.js';
import { TrustedSet } from '../src/trust/trusted-set.js';
import { LUA, WRK_PATH } from './load.js';

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
    trust: { allowLoopback: true, cidrs: ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] },
    identity: { userHeader: 'x-auth-request-user', emailHeader: 'x-auth-request-email', groupsHeader: 'x-auth-request-groups' },
    gateway: { scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'], byGroup: { admins: ['operator.admin'] } } },
  });
  const ctx: DecisionContext = {
    rules: compileRules(config),
    trusted: new TrustedSet(
      config.trust.cidrs.map((cidr) => ({ cidr, source: 'static' })),
      true,
    ),
    signer: new AssertionSigner('bench-1', SECRET),
    nowMs: Date.now(),
    newId: randomId,
  };
  const rawHeaders = wrkHeaders();
  // Node's parser hands every request new strings (whose hashes and lower-case forms are
  // not cached yet): cycle through many separate copies rather than one.
  const requests = Array.from({ length: 1024 }, (): RequestFacts => ({
    mode: 'inline',
    peer: '10.1.2.3',
    tls: false,
    method: 'GET',
    target: fresh(WRK_PATH),
    rawHeaders: rawHeaders.map(fresh),
  }));
  const inline = (facts: RequestFacts) => {
    const d = decide(facts, ctx);
    if (!d.ok) throw new Error(`the benchmark request is refused: ${d.reason}`);
    return upstreamHeaders(d, ctx.rules);
  };
  inline(requests[0]!);
  return measure((i) => inline(requests[i & 1023]!), seconds);
}

/** The header lines wrk sends (bench/wrk/identity.lua), as Node's rawHeaders, with keep-alive. */
function wrkHeaders(): string[] {
  const raw: string[] = [];
  for (const [, name, value] of readFileSync(LUA, 'utf8').matchAll(/^wrk\.headers\["([^"]+)"\] = "([^"]*)"$/gm)) raw.push(name!, value!);
  if (raw.length < 20) throw new Error(`read ${raw.length / 2} header lines from ${LUA}`);
  raw.push('Connection', 'keep-alive');
  return raw;
}

function fresh(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/** Signs per second with the bench's HS256 key, or a new key pair of `algorithm`. */
export function signs(seconds: number, algorithm: Algorithm = 'HS256'): Rate {
  const signer = new AssertionSigner('bench-1', algorithm === 'HS256' ? SECRET : createPrivateKey(newKeyFile(algorithm)));
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

/**
 * What the limits add to one inline request, as the handler does it: the response counted
 * as owed on its connection, the identity's share and a pooled-connection permit taken,
 * and all of it given back when the response closes. The response is a bare emitter, so
 * the figure includes an allocation the real request has anyway.
 */
export function limitsBookkeeping(seconds: number): Rate {
  const slots = new UpstreamSlots(256, 10_000);
  const requests = new PerKeyLimit(64);
  const connections = Array.from({ length: 64 }, () => ({}));
  const users = Array.from({ length: 8 }, (_, i) => `user${i}@example.com`);
  return measure((i) => {
    const res = new EventEmitter() as unknown as ServerResponse;
    trackResponse(connections[i & 63]!, res);
    const user = users[i & 7]!;
    if (!requests.tryAcquire(user)) throw new Error('the benchmark ran into its own limit');
    let holding = false;
    const withdraw = slots.acquire(
      () => (holding = true),
      () => undefined,
    );
    res.once('close', () => {
      withdraw();
      requests.release(user);
      if (holding) slots.release();
    });
    res.emit('close');
    return holding;
  }, seconds);
}
