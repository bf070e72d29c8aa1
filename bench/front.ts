// nginx, Caddy and Traefik as the comparison paths: nginx proxy_pass (the reference proxy),
// Traefik as a plain proxy, and the two-hop set-ups where the front proxy asks the
// sidecar's forward-auth endpoint.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { start, tempDir, type Proc } from './procs.js';

/** Built by scripts/install-peers.sh; the benchmark runs from the checkout's root. */
const TRAEFIK = resolve('.tools/bin/traefik');

/** Headers the sidecar grants that the front proxy copies onto the forwarded request. */
export const GRANT_HEADERS = ['X-Trusted-Proxy-Assertion', 'X-Forwarded-User', 'X-Openclaw-Scopes'] as const;

export interface FrontPorts {
  listen: number;
  upstream: number;
  /** The sidecar's data port (two-hop only). */
  sidecar?: number;
}

const nginxVar = (h: string) => `$grant_${h.toLowerCase().replace(/-/g, '_')}`;

export function nginxConf(dir: string, p: FrontPorts, withAuth: boolean): string {
  const auth = withAuth
    ? [
        '        location = /_sidecar_auth {',
        '            internal;',
        '            proxy_pass_request_body off;',
        '            proxy_set_header Content-Length "";',
        '            proxy_set_header X-Forwarded-Method $request_method;',
        '            proxy_set_header X-Forwarded-Uri $request_uri;',
        '            proxy_http_version 1.1;',
        '            proxy_set_header Connection "";',
        `            proxy_pass http://sidecar/forward-auth;`,
        '        }',
      ]
    : [];
  const grant = withAuth
    ? [
        '            auth_request /_sidecar_auth;',
        ...GRANT_HEADERS.map((h) => `            auth_request_set ${nginxVar(h)} $upstream_http_${h.toLowerCase().replace(/-/g, '_')};`),
        ...GRANT_HEADERS.map((h) => `            proxy_set_header ${h} ${nginxVar(h)};`),
      ]
    : [];
  return [
    'worker_processes 1;',
    'daemon off;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events { worker_connections 4096; }',
    'http {',
    // No access log: the sidecar writes no line per allowed request either.
    '    access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${join(dir, `${t}_temp`)};`),
    `    upstream gateway { server 127.0.0.1:${p.upstream}; keepalive 64; }`,
    // WebSockets: Connection: upgrade only when the client asked; otherwise empty, which
    // keeps the upstream connection in the keep-alive pool.
    "    map $http_upgrade $connection_upgrade { default upgrade; '' ''; }",
    ...(withAuth ? [`    upstream sidecar { server 127.0.0.1:${p.sidecar}; keepalive 64; }`] : []),
    '    server {',
    `        listen 127.0.0.1:${p.listen};`,
    ...auth,
    '        location / {',
    ...grant,
    '            proxy_http_version 1.1;',
    '            proxy_set_header Upgrade $http_upgrade;',
    '            proxy_set_header Connection $connection_upgrade;',
    '            proxy_pass http://gateway;',
    '        }',
    '    }',
    '}',
    '',
  ].join('\n');
}

export function caddyfile(dir: string, p: FrontPorts): string {
  return [
    '{',
    '\tadmin off',
    '\tauto_https off',
    `\tstorage file_system ${join(dir, 'data')}`,
    '}',
    // Any Host (wrk sends the gateway's name): Caddy answers an unmatched Host with an
    // empty 200 of its own, which would be measured as a very fast gateway.
    `http://:${p.listen} {`,
    '\tbind 127.0.0.1',
    `\tforward_auth 127.0.0.1:${p.sidecar} {`,
    '\t\turi /forward-auth',
    `\t\tcopy_headers ${GRANT_HEADERS.join(' ')}`,
    '\t}',
    `\treverse_proxy 127.0.0.1:${p.upstream}`,
    '}',
    '',
  ].join('\n');
}

export function startNginx(p: FrontPorts, withAuth: boolean): Proc {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-nginx-')));
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConf(dir, p, withAuth));
  execFileSync('nginx', ['-t', '-q', '-p', dir, '-c', conf], { stdio: 'pipe' });
  return start('nginx', ['-p', dir, '-c', conf]);
}

export function startCaddy(p: FrontPorts): Proc {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-caddy-')));
  const file = join(dir, 'Caddyfile');
  writeFileSync(file, caddyfile(dir, p));
  const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
  execFileSync('caddy', ['validate', '--adapter', 'caddyfile', '--config', file], { stdio: 'pipe', env });
  return start('caddy', ['run', '--adapter', 'caddyfile', '--config', file], { env });
}

/** Traefik's dynamic configuration: one router for every request, ForwardAuth to the sidecar if asked. */
export function traefikDynamic(p: FrontPorts, withAuth: boolean): string {
  return stringify({
    http: {
      routers: { gateway: { rule: 'PathPrefix(`/`)', entryPoints: ['web'], service: 'gateway', ...(withAuth && { middlewares: ['sidecar'] }) } },
      services: { gateway: { loadBalancer: { servers: [{ url: `http://127.0.0.1:${p.upstream}` }] } } },
      ...(withAuth && {
        middlewares: { sidecar: { forwardAuth: { address: `http://127.0.0.1:${p.sidecar}/forward-auth`, authResponseHeaders: [...GRANT_HEADERS] } } },
      }),
    },
  });
}

export function startTraefik(p: FrontPorts, withAuth: boolean): Proc {
  const dir = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-traefik-')));
  const file = join(dir, 'dynamic.yaml');
  writeFileSync(file, traefikDynamic(p, withAuth));
  return start(TRAEFIK, [
    '--global.checkNewVersion=false',
    '--global.sendAnonymousUsage=false',
    `--entryPoints.web.address=127.0.0.1:${p.listen}`,
    `--providers.file.filename=${file}`,
    // As nginx and Caddy here: no line per request.
    '--log.level=ERROR',
  ]);
}
