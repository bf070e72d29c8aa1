// A Kubernetes API server for tests, faithful on the wire for what discovery uses: HTTPS
// with its own CA (made with openssl at start), bearer tokens (401), RBAC refusals (403),
// lists of pods, nodes and EndpointSlices with labelSelector, resourceVersion and
// limit/continue (consistent snapshots), and watches streaming newline-delimited
// ADDED/MODIFIED/DELETED/BOOKMARK events, ERROR 410 for expired resource versions, and
// timeoutSeconds. On command it drops or stalls connections, answers 500/429, expires
// resource versions, and goes down and up again. It is driven only through the real
// client library and the sidecar's in-cluster path (a service-account folder + env).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, signCertificate } from '../../harness/test-ca.js';

export type Resource = 'pods' | 'nodes' | 'endpointslices';

interface KubeObject {
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const KINDS: Record<Resource, { kind: string; apiVersion: string; namespaced: boolean }> = {
  pods: { kind: 'Pod', apiVersion: 'v1', namespaced: true },
  nodes: { kind: 'Node', apiVersion: 'v1', namespaced: false },
  endpointslices: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', namespaced: true },
};

const ROUTES: [RegExp, Resource][] = [
  [/^\/api\/v1\/namespaces\/([^/]+)\/pods$/, 'pods'],
  [/^\/api\/v1\/nodes$/, 'nodes'],
  [/^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/, 'endpointslices'],
];

export interface RecordedRequest {
  resource: Resource | undefined;
  namespace: string | undefined;
  watch: boolean;
  query: Record<string, string>;
  token: string | undefined;
  status: number;
}

interface HistoryEntry {
  rv: number;
  resource: Resource;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: KubeObject;
  /** The object before this change (for selector transitions). */
  prev: KubeObject | undefined;
}

interface Watcher {
  resource: Resource;
  namespace: string | undefined;
  selector: (labels: Record<string, string> | undefined) => boolean;
  bookmarks: boolean;
  res: ServerResponse;
  /** Set while stalled: events are withheld and the stream is cut on unstall. */
  missed: boolean;
}

export interface KubeApiServer {
  url: string;
  port: number;
  /** A service-account folder (token, ca.crt, namespace) as a pod would have it mounted. */
  serviceAccountDir: string;
  /** The environment of the sidecar's in-cluster path. */
  env: Record<string, string>;
  caPem: string;
  token: string;
  requests: RecordedRequest[];
  /** The current resourceVersion (the last change). */
  resourceVersion(): number;
  upsert(resource: Resource, obj: KubeObject): number;
  remove(resource: Resource, namespace: string | undefined, name: string): number;
  /** Writes a new token into the service-account folder; the old one is refused from now on. */
  rotateToken(): string;
  forbid(resource: Resource, namespace?: string): void;
  allow(resource: Resource, namespace?: string): void;
  /** The next `count` matching requests fail with `status` (a Status body; 429 adds Retry-After). */
  failNext(status: number, count: number, on?: 'list' | 'watch'): void;
  /** Sends a BOOKMARK at the current resourceVersion to every watch that asked for them. */
  bookmark(): void;
  /** Cuts every open watch mid-stream (no terminating chunk). */
  dropWatches(): void;
  /** Ends every open watch cleanly, as after timeoutSeconds. */
  endWatches(): void;
  /** Compacts history: every resourceVersion before the current one is too old; open watches get ERROR 410 and end. */
  expire(): void;
  /** New requests get no answer and open watches get no events, until unstall(). */
  stall(): void;
  unstall(): void;
  /** Stops listening and cuts every connection; up() listens on the same port again. */
  down(): Promise<void>;
  up(): Promise<void>;
  openWatches(): number;
  /** When the last watch event was written to a client (ms since the epoch), to time propagation. */
  lastEventWrittenAt(): number;
  close(): Promise<void>;
}

export interface KubeApiServerOptions {
  /** Address to listen on; also put in the certificate. */
  host?: string;
  /** Subject named in 403 messages. */
  user?: string;
}

export async function startKubeApiServer(options: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const host = options.host ?? '127.0.0.1';
  const user = options.user ?? 'system:serviceaccount:ingress:trusted-proxy-sidecar';
  const dir = mkdtempSync(join(tmpdir(), 'tps-kube-'));
  const tls = makeCertificates(dir, host);
  const saDir = join(dir, 'serviceaccount');
  execFileSync('mkdir', ['-p', saDir]);
  writeFileSync(join(saDir, 'ca.crt'), tls.caPem);
  writeFileSync(join(saDir, 'namespace'), 'ingress');
  let tokenSeq = 0;
  const newToken = () => `test-token-${process.pid}-${++tokenSeq}-${Math.random().toString(36).slice(2)}`;
  let token = newToken();
  const writeToken = () => {
    // As the kubelet does: write aside, then swap in atomically.
    writeFileSync(join(saDir, '.token.new'), token);
    renameSync(join(saDir, '.token.new'), join(saDir, 'token'));
  };
  writeToken();

  let rv = 1000;
  let compactedBefore = 0;
  const store = new Map<Resource, Map<string, KubeObject>>(Object.keys(KINDS).map((r) => [r as Resource, new Map()]));
  const history: HistoryEntry[] = [];
  const snapshots = new Map<number, Map<Resource, KubeObject[]>>();
  const watchers = new Set<Watcher>();
  const forbidden = new Set<string>();
  const failures: { status: number; count: number; on: 'list' | 'watch' | undefined }[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const held: ServerResponse[] = [];
  let stalled = false;
  let lastEventWrittenAt = 0;

  const keyOf = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

  const send = (w: Watcher, type: string, obj: unknown) => {
    if (stalled) {
      w.missed = true;
      return;
    }
    w.res.write(`${JSON.stringify({ type, object: obj })}\n`);
    lastEventWrittenAt = Date.now();
  };

  const deliver = (w: Watcher, e: HistoryEntry) => {
    if (w.resource !== e.resource) return;
    if (w.namespace !== undefined && e.obj.metadata.namespace !== w.namespace) return;
    const now = e.type !== 'DELETED' && w.selector(e.obj.metadata.labels);
    const before = e.prev !== undefined && w.selector(e.prev.metadata.labels);
    // As the real watch cache does: an object entering the selection is ADDED to this
    // watcher, one leaving it is DELETED.
    if (e.type === 'DELETED') {
      if (w.selector(e.obj.metadata.labels)) send(w, 'DELETED', e.obj);
    } else if (now && before) send(w, 'MODIFIED', e.obj);
    else if (now) send(w, 'ADDED', e.obj);
    else if (before) send(w, 'DELETED', e.obj);
  };

  const record = (resource: Resource, type: HistoryEntry['type'], obj: KubeObject, prev: KubeObject | undefined) => {
    const entry = { rv, resource, type, obj, prev };
    history.push(entry);
    for (const w of watchers) deliver(w, entry);
    return rv;
  };

  const statusBody = (code: number, reason: string, message: string) =>
    JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://api');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    const route = ROUTES.map(([re, r]) => [re.exec(url.pathname), r] as const).find(([m]) => m);
    const resource = route?.[1];
    const namespace = route?.[0]?.[1] ? decodeURIComponent(route[0][1]) : undefined;
    const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    const entry: RecordedRequest = { resource, namespace, watch, query, token: auth?.[1], status: 0 };
    requests.push(entry);
    const fail = (code: number, reason: string, message: string, headers: Record<string, string> = {}) => {
      entry.status = code;
      res.writeHead(code, { 'content-type': 'application/json', ...headers }).end(statusBody(code, reason, message));
    };
    if (stalled) {
      held.push(res);
      return;
    }
    if (auth?.[1] !== token) return fail(401, 'Unauthorized', 'Unauthorized');
    if (req.method !== 'GET' || !resource) return fail(404, 'NotFound', 'the server could not find the requested resource');
    const verb = watch ? 'watch' : 'list';
    if (forbidden.has(resource) || (namespace !== undefined && forbidden.has(`${resource}:${namespace}`))) {
      const group = KINDS[resource].apiVersion.includes('/') ? KINDS[resource].apiVersion.split('/')[0] : '';
      const scope = namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
      return fail(403, 'Forbidden', `${resource} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${group}" ${scope}`);
    }
    const failure = failures.find((f) => f.count > 0 && (f.on === undefined || f.on === verb));
    if (failure) {
      failure.count--;
      if (failure.status === 429)
        return fail(429, 'TooManyRequests', 'the server has received too many requests and has asked us to try again later', { 'retry-after': '1' });
      if (failure.status === 410) return fail(410, 'Expired', 'too old resource version');
      return fail(failure.status, 'InternalError', 'an error on the server ("injected") has prevented the request from succeeding');
    }
    let selector: (labels: Record<string, string> | undefined) => boolean;
    try {
      selector = parseSelector(query.labelSelector ?? '');
    } catch (err) {
      return fail(400, 'BadRequest', `unable to parse requirement: ${(err as Error).message}`);
    }
    const { kind, apiVersion } = KINDS[resource];
    if (!watch) {
      const limit = Number(query.limit ?? 0);
      let at = rv;
      let start = 0;
      if (query.continue) {
        const c = JSON.parse(Buffer.from(query.continue, 'base64').toString()) as { rv: number; start: number };
        if (c.rv < compactedBefore || !snapshots.has(c.rv)) {
          return fail(
            410,
            'Expired',
            'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
          );
        }
        at = c.rv;
        start = c.start;
      } else {
        snapshots.set(rv, new Map([...store].map(([r, m]) => [r, [...m.values()]])));
      }
      const all = snapshots
        .get(at)!
        .get(resource)!
        .filter((o) => (namespace === undefined || o.metadata.namespace === namespace) && selector(o.metadata.labels))
        .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
      const items = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
      const more = limit > 0 && start + limit < all.length;
      const metadata: Record<string, unknown> = { resourceVersion: String(at) };
      if (more) {
        metadata.continue = Buffer.from(JSON.stringify({ rv: at, start: start + limit })).toString('base64');
        metadata.remainingItemCount = all.length - start - limit;
      }
      entry.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: `${kind}List`, apiVersion, metadata, items }));
      return;
    }
    entry.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource, namespace, selector, bookmarks: query.allowWatchBookmarks === 'true', res, missed: false };
    const from = Number(query.resourceVersion || rv);
    if (from < compactedBefore) {
      // What kube-apiserver does for a watch from a compacted resourceVersion.
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: JSON.parse(statusBody(410, 'Expired', `too old resource version: ${from} (${compactedBefore})`)) })}\n`,
      );
      return;
    }
    for (const e of history) if (e.rv > from) deliver(w, e);
    watchers.add(w);
    res.on('close', () => watchers.delete(w));
    const timeout = Number(query.timeoutSeconds ?? 0);
    if (timeout > 0) {
      const timer = setTimeout(() => res.end(), timeout * 1000);
      res.on('close', () => clearTimeout(timer));
    }
  };

  let server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, handle);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
    });
  const cutAll = () => {
    for (const s of sockets) s.destroy();
    held.length = 0;
  };
  const port = await listen(0);
  const url = `https://${host}:${port}`;

  return {
    url,
    port,
    serviceAccountDir: saDir,
    env: { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: String(port), TPS_SERVICEACCOUNT_DIR: saDir },
    caPem: tls.caPem,
    get token() {
      return token;
    },
    requests,
    resourceVersion: () => rv,
    upsert(resource, obj) {
      rv++;
      const stored: KubeObject = {
        apiVersion: KINDS[resource].apiVersion,
        kind: KINDS[resource].kind,
        ...obj,
        metadata: { ...obj.metadata, resourceVersion: String(rv) },
      };
      const map = store.get(resource)!;
      const prev = map.get(keyOf(stored));
      map.set(keyOf(stored), stored);
      return record(resource, prev ? 'MODIFIED' : 'ADDED', stored, prev);
    },
    remove(resource, namespace, name) {
      const map = store.get(resource)!;
      const key = `${namespace ?? ''}/${name}`;
      const prev = map.get(key);
      if (!prev) throw new Error(`no ${resource} ${key}`);
      rv++;
      map.delete(key);
      return record(resource, 'DELETED', { ...prev, metadata: { ...prev.metadata, resourceVersion: String(rv) } }, prev);
    },
    rotateToken() {
      token = newToken();
      writeToken();
      return token;
    },
    forbid: (resource, namespace) => void forbidden.add(namespace === undefined ? resource : `${resource}:${namespace}`),
    allow: (resource, namespace) => void forbidden.delete(namespace === undefined ? resource : `${resource}:${namespace}`),
    failNext: (status, count, on) => void failures.push({ status, count, on }),
    bookmark() {
      for (const w of watchers) {
        if (w.bookmarks)
          send(w, 'BOOKMARK', { kind: KINDS[w.resource].kind, apiVersion: KINDS[w.resource].apiVersion, metadata: { resourceVersion: String(rv) } });
      }
    },
    dropWatches() {
      for (const w of watchers) w.res.socket?.destroy();
    },
    endWatches() {
      for (const w of watchers) w.res.end();
    },
    expire() {
      compactedBefore = rv;
      snapshots.clear();
      for (const w of watchers) {
        send(w, 'ERROR', JSON.parse(statusBody(410, 'Expired', 'too old resource version')));
        w.res.end();
      }
    },
    stall() {
      stalled = true;
    },
    unstall() {
      stalled = false;
      for (const res of held.splice(0)) res.socket?.destroy();
      for (const w of watchers) if (w.missed) w.res.socket?.destroy();
    },
    async down() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        cutAll();
      });
    },
    async up() {
      server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, handle);
      await listen(port);
    },
    openWatches: () => watchers.size,
    lastEventWrittenAt: () => lastEventWrittenAt,
    async close() {
      if (server.listening) {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          cutAll();
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA and a server certificate for `host` (and 127.0.0.1, localhost), by openssl. */
function makeCertificates(dir: string, host: string): { caPem: string; certPem: string; keyPem: string } {
  const caFile = makeCa(dir, 'test-kubernetes-ca');
  const sans = [...[...new Set([host, '127.0.0.1'])].map((a) => `IP:${a}`), 'DNS:localhost', 'DNS:kubernetes.default.svc'];
  const { certFile, keyFile } = signCertificate(dir, 'server', '/CN=kube-apiserver', sans, 'serverAuth');
  return { caPem: readFileSync(caFile, 'utf8'), certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
}

/**
 * Label selectors as kube-apiserver parses them: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x,y)`, joined by commas.
 */
export function parseSelector(text: string): (labels: Record<string, string> | undefined) => boolean {
  const reqs: ((l: Record<string, string>) => boolean)[] = [];
  const parts = text.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  for (const raw of parts) {
    const part = raw.trim();
    if (!part) continue;
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part))) {
      const [, key, op, list] = m;
      const values = list!.split(',').map((v) => v.trim());
      reqs.push(op === 'in' ? (l) => values.includes(l[key!] ?? '\0') : (l) => !values.includes(l[key!] ?? '\0'));
    } else if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(part))) {
      const [, key, op, value] = m;
      reqs.push(op === '!=' ? (l) => l[key!] !== value : (l) => l[key!] === value);
    } else if ((m = /^!([\w./-]+)$/.exec(part))) {
      const key = m[1]!;
      reqs.push((l) => !(key in l));
    } else if ((m = /^([\w./-]+)$/.exec(part))) {
      const key = m[1]!;
      reqs.push((l) => key in l);
    } else {
      throw new Error(part);
    }
  }
  return (labels) => reqs.every((r) => r(labels ?? {}));
}
