// The admin listener (express): health, readiness and metrics. Never proxied.
import http from 'node:http';
import { connect } from 'node:net';
import express, { type Express } from 'express';
import { publicKeySet } from '../assertion/keys.js';
import type { Runtime } from '../runtime/runtime.js';

export interface AdminState {
  draining: boolean;
}

/**
 * The admin port answers probes and scrapes, which are small and quick: a client that
 * stalls or sends slowly is cut off within seconds, as on the data port, so it cannot hold
 * connections the kubelet and Prometheus need.
 */
export function createAdminServer(runtime: Runtime, state: AdminState): http.Server {
  const server = http.createServer({ connectionsCheckingInterval: 1000, headersTimeout: 5000, requestTimeout: 10_000, keepAliveTimeout: 5000 }, createAdminApp(runtime, state));
  server.on('connection', (socket) => socket.on('error', () => socket.destroy()));
  return server;
}

function createAdminApp(runtime: Runtime, state: AdminState): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const problems = runtime.readinessProblems();
    if (state.draining) problems.push('shutting down');
    if (!(await upstreamAccepts(runtime.config.upstream.url))) problems.push('upstream not accepting connections');
    runtime.metrics.ready.set(problems.length === 0 ? 1 : 0);
    res.status(problems.length === 0 ? 200 : 503).json({ ready: problems.length === 0, problems });
  });
  // The gateway binds loopback, out of the kubelet's reach: its probes come here. A 2xx is
  // not enough (a single-page UI answers any path with 200), so the body must be JSON
  // that says healthy.
  for (const probe of ['healthz', 'readyz'] as const) {
    app.get(`/gateway/${probe}`, async (_req, res) => {
      const problem = await gatewayProbeProblem(new URL(`/${probe}`, runtime.config.upstream.url));
      res.status(problem ? 503 : 200).json(problem ? { ok: false, problem } : { ok: true });
    });
  }
  // The public keys of EdDSA or ES256 assertions, for gateways that verify without a secret.
  app.get('/.well-known/jwks.json', (_req, res) => {
    const { keys } = runtime.snapshot;
    if (keys.algorithm === 'HS256') {
      res.status(404).json({ error: 'no_public_keys', detail: 'assertion.algorithm is HS256: the key is a shared secret' });
      return;
    }
    res.set('cache-control', 'max-age=60').json(publicKeySet(keys));
  });
  app.get('/metrics', async (_req, res) => {
    res.type(runtime.metrics.registry.contentType).send(await runtime.metrics.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found' });
  });
  return app;
}

/** True when the upstream accepts a TCP connection within a second. */
export function upstreamAccepts(url: string, timeoutMs = 1000): Promise<boolean> {
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const HEALTHY_STATUS = new Set(['ok', 'live', 'ready', 'healthy', 'pass', 'up']);

/** Why the gateway's health answer at `url` is not healthy, or undefined when it is. */
export async function gatewayProbeProblem(url: URL, timeoutMs = 2000): Promise<string | undefined> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  } catch (err) {
    return `gateway unreachable (${(err as Error).name})`;
  }
  const text = await res.text().catch(() => '');
  if (res.status < 200 || res.status > 299) return `gateway answered ${res.status}`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'gateway answer is not JSON';
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'gateway answer is not a JSON object';
  const b = body as Record<string, unknown>;
  if (b.ok === false || b.ready === false || b.live === false) return 'gateway reports unhealthy';
  const healthy =
    b.ok === true || b.ready === true || b.live === true || (typeof b.status === 'string' && HEALTHY_STATUS.has(b.status.toLowerCase()));
  return healthy ? undefined : 'gateway answer does not say healthy';
}
