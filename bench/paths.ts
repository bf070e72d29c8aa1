// The paths from the load generator to the upstream, each started on demand and stopped
// after its measurement, so no two compete for the CPU.
import type { Algorithm } from '../src/config/schema.js';
import { fork, type ChildProcess } from 'node:child_process';
import { startCaddy, startNginx, startTraefik } from './front.js';
import { startOauth2Proxy } from './oauth2-proxy.js';
import { startKubeRbacProxy } from './kube-rbac-proxy.js';
import type { Credential } from './load.js';
import { answers, freePort, httpOk, owned, stopChild, until, withChildren } from './procs.js';
import { imageEnv, startSidecar } from './sidecar.js';

export interface RunningPath {
  url: string;
  /** The processes that do the proxying (their CPU and RSS are the path's cost). */
  pids(): number[];
  /** The sidecar's pid and admin URL when the path goes through it. */
  sidecarPid?: number;
  adminUrl?: string;
  /** A header every request must carry (a path that checks a real session or token). */
  credential?: Credential;
  stop(): Promise<void>;
}

export interface PathSpec {
  id: string;
  title: string;
  /** Whether requests pass the sidecar (the upstream must see a signed assertion). */
  signed: boolean;
  start(upstreamPort: number): Promise<RunningPath>;
}

const FORWARDER = new URL('./forwarder.js', import.meta.url).pathname;

/** Forks a bench child (upstream or forwarder) and waits for it to report its port. */
export async function forkChild(script: string, args: string[], execArgv: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = owned(fork(script, args, { env: imageEnv(), execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { child, port };
}

function forwarder(kind: string, title: string): PathSpec {
  return {
    id: `forwarder-${kind}`,
    title,
    signed: false,
    async start(upstreamPort) {
      const { child, port } = await forkChild(FORWARDER, [kind, `http://127.0.0.1:${upstreamPort}`]);
      return { url: `http://127.0.0.1:${port}`, pids: () => [child.pid!], stop: () => stopChild(child) };
    },
  };
}

export const DIRECT: PathSpec = {
  id: 'direct',
  title: 'direct (no proxy)',
  signed: false,
  start: (upstreamPort) => Promise.resolve({ url: `http://127.0.0.1:${upstreamPort}`, pids: () => [], stop: () => Promise.resolve() }),
};

export const BARE: PathSpec = forwarder('proxy-layer', "bare forwarder (the sidecar's data plane)");

function inline(id: string, title: string, algorithm: Algorithm): PathSpec {
  return {
    id,
    title,
    signed: true,
    async start(upstreamPort) {
      const sidecar = await startSidecar(upstreamPort, [], algorithm);
      return {
        url: `http://127.0.0.1:${sidecar.port}`,
        pids: () => [sidecar.pid],
        sidecarPid: sidecar.pid,
        adminUrl: `http://127.0.0.1:${sidecar.adminPort}`,
        stop: sidecar.stop,
      };
    },
  };
}

export const INLINE: PathSpec = inline('sidecar', 'sidecar inline', 'HS256');
const INLINE_EDDSA = inline('sidecar-eddsa', 'sidecar inline, EdDSA assertions', 'EdDSA');
const INLINE_ES256 = inline('sidecar-es256', 'sidecar inline, ES256 assertions', 'ES256');

/** A front proxy alone in front of the upstream (no sidecar). */
function plainProxy(id: string, title: string, front: (listen: number, upstream: number) => { pid: number; stop(): Promise<void> }, tree: boolean): PathSpec {
  return {
    id,
    title,
    signed: false,
    async start(upstreamPort) {
      const listen = await freePort();
      const proxy = front(listen, upstreamPort);
      await until(title, () => httpOk(`http://127.0.0.1:${listen}/`), 15000);
      return { url: `http://127.0.0.1:${listen}`, pids: () => (tree ? withChildren(proxy.pid) : [proxy.pid]), stop: proxy.stop };
    },
  };
}

export const NGINX = plainProxy('nginx', 'nginx proxy_pass', (listen, upstream) => startNginx({ listen, upstream }, false), true);
export const TRAEFIK = plainProxy('traefik', 'Traefik (plain proxy)', (listen, upstream) => startTraefik({ listen, upstream }, false), false);

export const OAUTH2_PROXY: PathSpec = {
  id: 'oauth2-proxy',
  title: 'oauth2-proxy reverse proxy (valid session)',
  signed: false,
  start: startOauth2Proxy,
};

export const KUBE_RBAC_PROXY: PathSpec = {
  id: 'kube-rbac-proxy',
  title: 'kube-rbac-proxy (valid ServiceAccount token)',
  signed: false,
  start: startKubeRbacProxy,
};

function twoHop(
  id: string,
  title: string,
  front: (listen: number, upstream: number, sidecar: number) => { pid: number; stop(): Promise<void> },
  tree: boolean,
): PathSpec {
  return {
    id,
    title,
    signed: true,
    async start(upstreamPort) {
      const sidecar = await startSidecar(upstreamPort);
      const listen = await freePort();
      const proxy = front(listen, upstreamPort, sidecar.port);
      const stop = async () => {
        await proxy.stop();
        await sidecar.stop();
      };
      try {
        await until(title, () => answers(`http://127.0.0.1:${listen}/`), 10000);
      } catch (err) {
        await stop();
        throw err;
      }
      return {
        url: `http://127.0.0.1:${listen}`,
        pids: () => [...(tree ? withChildren(proxy.pid) : [proxy.pid]), sidecar.pid],
        sidecarPid: sidecar.pid,
        stop,
      };
    },
  };
}

export const NGINX_AUTH = twoHop(
  'nginx-auth',
  'nginx auth_request → sidecar',
  (listen, upstream, sidecar) => startNginx({ listen, upstream, sidecar }, true),
  true,
);
export const CADDY_AUTH = twoHop('caddy-auth', 'Caddy forward_auth → sidecar', (listen, upstream, sidecar) => startCaddy({ listen, upstream, sidecar }), false);
export const TRAEFIK_AUTH = twoHop(
  'traefik-auth',
  'Traefik ForwardAuth → sidecar',
  (listen, upstream, sidecar) => startTraefik({ listen, upstream, sidecar }, true),
  false,
);

/** Alternatives for the proxy layer, measured in the same run. */
export const NODE_RELAY = forwarder('node-http', 'bare forwarder (Node http client)');
export const ALTERNATIVES: PathSpec[] = [NODE_RELAY, forwarder('undici', 'bare forwarder (undici)')];

export const PATHS: PathSpec[] = [
  DIRECT,
  BARE,
  INLINE,
  INLINE_EDDSA,
  INLINE_ES256,
  NGINX,
  TRAEFIK,
  OAUTH2_PROXY,
  KUBE_RBAC_PROXY,
  NGINX_AUTH,
  CADDY_AUTH,
  TRAEFIK_AUTH,
];
