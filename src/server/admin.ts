// The admin listener: health, readiness, the public keys and metrics. Never proxied.
import http from 'node:http';
import { connect } from 'node:net';
import { publicKeySet } from '../assertion/keys.js';
import { gatewayEndpoint } from '../gateway/endpoint.js';
import type { Runtime } from '../runtime/runtime.js';
import { ConnectionQuota } from './connection-quota.js';

export interface AdminState {
  draining: boolean;
}

/**
 * The admin port answers probes and scrapes, which are small and quick: a client that
 * stalls or sends slowly is cut off within seconds, as on the data port; one peer address
 * holds at most a few connections, and a reserve is kept for addresses that hold fewer, so
 * a flood from one pod, or from a handful, cannot take the connections the kubelet and
 * Prometheus need, nor grow the process's memory without bound.
 */
export function createAdminServer(runtime: Runtime, state: AdminState): http.Server {
  const server = http.createServer(
    { connectionsCheckingInterval: 1000, headersTimeout: 5000, requestTimeout: 10_000, keepAliveTimeout: 5000 },
    createAdminApp(runtime, state),
  );
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  const dropped = runtime.metrics.connectionsDropped;
  server.on('drop', () => dropped.inc({ port: 'admin', reason: 'max_connections' }));
  runtime.metrics.observeConnections('admin', server);
  server.on('connection', (socket) => socket.on('error', () => socket.destroy()));
  const perAddress = new ConnectionQuota(
    server,
    ADMIN_CONNECTIONS_PER_ADDRESS,
    (peer) => peer,
    () => dropped.inc({ port: 'admin', reason: 'address_limit' }),
  );
  // After the quota's listener: it has counted this connection, or closed it.
  let open = 0;
  server.on('connection', (socket) => {
    if (socket.destroyed) return;
    const full =
      open >= ADMIN_MAX_CONNECTIONS || (open >= ADMIN_SHARED_CONNECTIONS && perAddress.count(socket.remoteAddress ?? '') > ADMIN_RESERVE_HOLDING + 1);
    if (full) {
      dropped.inc({ port: 'admin', reason: 'max_connections' });
      socket.destroy();
      return;
    }
    open++;
    socket.once('close', () => open--);
  });
  return server;
}

/** The kubelet probes both containers from the node's address, a connection per probe; room for them to overlap. */
export const ADMIN_CONNECTIONS_PER_ADDRESS = 16;
/**
 * Connections any address may take, up to its share: eight addresses fill them. The rest,
 * up to ADMIN_MAX_CONNECTIONS, are a reserve for addresses that hold at most
 * ADMIN_RESERVE_HOLDING others, as the kubelet and Prometheus do: once the shared ones are
 * full, a flood needs (max - shared) / (holding + 1) more addresses of its own to take the
 * reserve too.
 */
export const ADMIN_SHARED_CONNECTIONS = 128;
export const ADMIN_RESERVE_HOLDING = 3;
/** Within the data port's reserve of descriptors (data-plane.ts). */
export const ADMIN_MAX_CONNECTIONS = 160;

type Answer = { status: number; body: string | object; headers?: Record<string, string> };

/**
 * The admin routes: GET (and HEAD) of a handful of exact paths. A table over node:http:
 * express cost about 8 MB of the sidecar's idle memory for these few lines
 * (docs/decisions/0002-batched-metric-children.md).
 */
function createAdminApp(runtime: Runtime, state: AdminState): http.RequestListener {
  const upstreamUp = oneAtATime(upstreamAccepts);
  const gatewayProblem = oneAtATime((url: string) => gatewayProbeProblem(new URL(url)));
  // A scrape collects every metric; scrapes that come meanwhile take its text, at most the
  // time of one collection old.
  const exposition = oneAtATime(() => runtime.metrics.registry.metrics());
  const routes = new Map<string, () => Promise<Answer> | Answer>([
    ['/healthz', () => ({ status: 200, body: { status: 'ok' } })],
    [
      '/readyz',
      async () => {
        const problems = runtime.readinessProblems();
        if (state.draining) problems.push('shutting down');
        if (!(await upstreamUp(runtime.config.upstream.url))) problems.push('upstream not accepting connections');
        runtime.metrics.ready.set(problems.length === 0 ? 1 : 0);
        return { status: problems.length === 0 ? 200 : 503, body: { ready: problems.length === 0, problems } };
      },
    ],
    // The gateway binds loopback, out of the kubelet's reach: its probes come here. A 2xx is
    // not enough (a single-page UI answers any path with 200), so the body must be JSON
    // that says healthy.
    ...(['healthz', 'readyz'] as const).map((probe): [string, () => Promise<Answer>] => [
      `/gateway/${probe}`,
      async () => {
        const problem = await gatewayProblem(new URL(`/${probe}`, runtime.config.upstream.url).href);
        return { status: problem ? 503 : 200, body: problem ? { ok: false, problem } : { ok: true } };
      },
    ]),
    // The public keys of EdDSA or ES256 assertions, for gateways that verify without a secret.
    [
      '/.well-known/jwks.json',
      () => {
        const { keys } = runtime.snapshot;
        if (keys.algorithm === 'HS256')
          return { status: 404, body: { error: 'no_public_keys', detail: 'assertion.algorithm is HS256: the key is a shared secret' } };
        return { status: 200, body: publicKeySet(keys), headers: { 'cache-control': 'max-age=60' } };
      },
    ],
    ['/metrics', async () => ({ status: 200, body: await exposition('/metrics'), headers: { 'content-type': runtime.metrics.registry.contentType } })],
  ]);
  return (req, res) => {
    const route = req.method === 'GET' || req.method === 'HEAD' ? routes.get((req.url ?? '/').split('?')[0]!) : undefined;
    // In a promise's executor, so a route that throws answers 500 like one that rejects.
    void new Promise<Answer>((resolve) => resolve(route ? route() : { status: 404, body: { error: 'not_found' } })).then(
      (a) => send(res, req.method === 'HEAD', a),
      () => send(res, false, { status: 500, body: { error: 'internal' } }),
    );
  };
}

function send(res: http.ServerResponse, head: boolean, { status, body, headers }: Answer): void {
  if (res.destroyed) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(head ? undefined : text);
}

/**
 * One probe of a target (or one scrape) in flight at a time: requests that come meanwhile
 * share its answer, so clients hammering the admin port cost the gateway, or the sidecar's
 * event loop, one at a time, not one each.
 */
function oneAtATime<T>(probe: (target: string) => Promise<T>): (target: string) => Promise<T> {
  const running = new Map<string, Promise<T>>();
  return (target) => {
    let answer = running.get(target);
    if (answer === undefined) {
      answer = probe(target).finally(() => running.delete(target));
      running.set(target, answer);
    }
    return answer;
  };
}

/** True when the upstream accepts a TCP connection within a second. */
export function upstreamAccepts(url: string, timeoutMs = 1000): Promise<boolean> {
  const { host, port } = gatewayEndpoint(url);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
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
  const healthy = b.ok === true || b.ready === true || b.live === true || (typeof b.status === 'string' && HEALTHY_STATUS.has(b.status.toLowerCase()));
  return healthy ? undefined : 'gateway answer does not say healthy';
}
