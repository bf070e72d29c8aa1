// The admin listener (express): health, readiness and metrics. Never proxied.
import { connect } from 'node:net';
import express, { type Express } from 'express';
import type { Runtime } from '../runtime/runtime.js';

export interface AdminState {
  draining: boolean;
}

export function createAdminApp(runtime: Runtime, state: AdminState): Express {
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
