// Real front proxies for end-to-end tests: Caddyfile and nginx config writers (the same
// ones that produce manifests/examples/), and process control that runs `caddy` and
// `nginx` inside a test host with a temp folder of their own, validating configs first.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from '../../harness/netns.js';

export type FrontProxyMode = 'inline' | 'forward-auth';

export interface FrontProxySite {
  /** inline: proxy to the sidecar; forward-auth: ask the sidecar, then proxy to the gateway. */
  mode: FrontProxyMode;
  /** Plain-HTTP port the front proxy listens on. */
  port: number;
  /** oauth2-proxy (or a compatible session check), host:port; asked at /oauth2/auth. */
  authService: string;
  /** The sidecar's data port, host:port. */
  sidecar: string;
  /** forward-auth mode: the gateway, host:port, which then verifies the assertion itself. */
  gateway?: string;
  /** The sidecar's forwardAuth.path. */
  forwardAuthPath?: string;
  /** Identity headers copied from the auth service's answer onto the request. */
  identityHeaders?: readonly string[];
  /** Headers copied from the sidecar's forward-auth answer onto the request (forward-auth mode). */
  grantHeaders?: readonly string[];
}

export const OAUTH2_PROXY_HEADERS = ['X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Auth-Request-Groups'] as const;
export const SIDECAR_GRANT_HEADERS = ['X-Trusted-Proxy-Assertion', 'X-Forwarded-User', 'X-Openclaw-Scopes'] as const;

function resolved(site: FrontProxySite) {
  const gateway = site.gateway;
  if (site.mode === 'forward-auth' && !gateway) throw new Error('forward-auth mode needs the gateway address');
  return {
    ...site,
    gateway: gateway ?? '',
    forwardAuthPath: site.forwardAuthPath ?? '/forward-auth',
    identityHeaders: site.identityHeaders ?? OAUTH2_PROXY_HEADERS,
    grantHeaders: site.grantHeaders ?? SIDECAR_GRANT_HEADERS,
  };
}

// ---------------------------------------------------------------------------- Caddy

/** Caddy site blocks (a Caddyfile of its own, or one to `import`). */
export function caddySites(sites: readonly FrontProxySite[]): string {
  return sites.map(caddySite).join('\n');
}

function caddySite(input: FrontProxySite): string {
  const s = resolved(input);
  const lines = [
    `# ${s.mode === 'inline' ? 'Inline mode: the sidecar is the only way to the gateway.' : 'Forward-auth mode: the sidecar answers, the gateway verifies the assertion.'}`,
    `:${s.port} {`,
    `\t# The session check (oauth2-proxy). A missing or expired session gets its 401.`,
    `\tforward_auth ${s.authService} {`,
    `\t\turi /oauth2/auth`,
    `\t\tcopy_headers ${s.identityHeaders.join(' ')}`,
    `\t}`,
  ];
  if (s.mode === 'inline') {
    lines.push(`\treverse_proxy ${s.sidecar}`);
  } else {
    lines.push(
      `\t# The sidecar decides and signs; its answer's headers replace any a client sent.`,
      `\tforward_auth ${s.sidecar} {`,
      `\t\turi ${s.forwardAuthPath}`,
      `\t\tcopy_headers ${s.grantHeaders.join(' ')}`,
      `\t}`,
      `\treverse_proxy ${s.gateway}`,
    );
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** A complete test Caddyfile: no admin endpoint, no certificates, state in `dir`. */
export function caddyfile(sites: readonly FrontProxySite[], dir: string): string {
  return `{\n\tadmin off\n\tauto_https off\n\tstorage file_system ${join(dir, 'data')}\n}\n\n${caddySites(sites)}`;
}

// ---------------------------------------------------------------------------- nginx

/** nginx http-context configuration (a conf.d file): the upgrade map and one server per site. */
export function nginxSites(sites: readonly FrontProxySite[]): string {
  const map = [
    '# WebSockets: pass Upgrade on, and Connection: upgrade only when the client asked for it.',
    'map $http_upgrade $connection_upgrade {',
    '    default upgrade;',
    "    ''      '';",
    '}',
    '',
  ];
  return [...map, ...sites.map(nginxServer)].join('\n');
}

const varName = (prefix: string, header: string) => `$${prefix}_${header.toLowerCase().replace(/-/g, '_')}`;
const upstreamVar = (header: string) => `$upstream_http_${header.toLowerCase().replace(/-/g, '_')}`;

function nginxServer(input: FrontProxySite): string {
  const s = resolved(input);
  const forwarded = [
    'proxy_set_header Host $http_host;',
    'proxy_set_header X-Forwarded-For $remote_addr;',
    'proxy_set_header X-Forwarded-Proto $scheme;',
    'proxy_set_header X-Forwarded-Host $http_host;',
  ];
  const websocket = ['proxy_http_version 1.1;', 'proxy_set_header Upgrade $http_upgrade;', 'proxy_set_header Connection $connection_upgrade;'];
  const subrequest = ['internal;', 'proxy_pass_request_body off;', 'proxy_set_header Content-Length "";'];
  // auth_request_set, then proxy_set_header: an empty value removes the header, so a
  // client's own copy never survives.
  const copy = (prefix: string, headers: readonly string[]) => headers.map((h) => `auth_request_set ${varName(prefix, h)} ${upstreamVar(h)};`);
  const setFrom = (prefix: string, headers: readonly string[]) => headers.map((h) => `proxy_set_header ${h} ${varName(prefix, h)};`);
  const block = (head: string, body: string[]) => [`    ${head} {`, ...body.map((l) => (l ? `        ${l}` : '')), '    }'];

  const out = [
    `# ${s.mode === 'inline' ? 'Inline mode: the sidecar is the only way to the gateway.' : 'Forward-auth mode: the sidecar answers, the gateway verifies the assertion.'}`,
  ];
  out.push('server {', `    listen ${s.port};`, '');
  out.push(...block('location = /_oauth2_auth', [...subrequest, `proxy_pass http://${s.authService}/oauth2/auth;`]), '');
  if (s.mode === 'inline') {
    out.push(
      ...block('location /', [
        'auth_request /_oauth2_auth;',
        ...copy('auth', s.identityHeaders),
        ...setFrom('auth', s.identityHeaders),
        ...forwarded,
        ...websocket,
        `proxy_pass http://${s.sidecar};`,
      ]),
    );
  } else {
    // nginx allows one auth_request per location and none in subrequests, so the chain is
    // two locations: try_files runs after the access phase and hands over to the named
    // location, keeping the variables the first step set.
    out.push(
      ...block(`location = /_sidecar_auth`, [
        ...subrequest,
        ...setFrom('auth', s.identityHeaders),
        ...forwarded,
        'proxy_set_header X-Forwarded-Method $request_method;',
        'proxy_set_header X-Forwarded-Uri $request_uri;',
        `proxy_pass http://${s.sidecar}${s.forwardAuthPath};`,
      ]),
      '',
      ...block('location /', [
        'auth_request /_oauth2_auth;',
        ...copy('auth', s.identityHeaders),
        '# /dev/null is no folder, so this never serves a file: it only moves on.',
        'root /dev/null;',
        'try_files /.next @with_sidecar;',
      ]),
      '',
      ...block('location @with_sidecar', [
        'auth_request /_sidecar_auth;',
        ...copy('sidecar', s.grantHeaders),
        ...setFrom('auth', s.identityHeaders),
        ...setFrom('sidecar', s.grantHeaders),
        ...forwarded,
        ...websocket,
        `proxy_pass http://${s.gateway};`,
      ]),
    );
  }
  out.push('}', '');
  return out.join('\n');
}

/** A complete test nginx.conf: one worker, pid, logs and temp files in `dir`, no daemon. */
export function nginxConf(sites: readonly FrontProxySite[], dir: string): string {
  const indent = (text: string) =>
    text
      .split('\n')
      .map((l) => (l ? `    ${l}` : l))
      .join('\n');
  return [
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} warn;`,
    'events { worker_connections 256; }',
    'http {',
    `    access_log ${join(dir, 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${join(dir, `${t}_temp`)};`),
    indent(nginxSites(sites)),
    '}',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------- processes

export interface RunningProcess {
  child: ChildProcess;
  /** Everything written to stderr (and, for the proxies, stdout), for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface RunningProxy extends RunningProcess {
  dir: string;
  config: string;
}

/** Stops a child: SIGTERM, then SIGKILL after a bounded wait. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

function capture(child: ChildProcess): () => string {
  let text = '';
  const add = (c: Buffer) => {
    text = (text + c.toString()).slice(-20_000);
  };
  child.stderr?.on('data', add);
  return () => text;
}

/** Resolves once `host:port` accepts a TCP connection; bounded. */
export async function waitForPort(host: string, port: number, child: ChildProcess, output: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`process exited before listening on ${port}:\n${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      const done = (v: boolean) => {
        socket.destroy();
        resolve(v);
      };
      socket.setTimeout(500, () => done(false));
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startCaddy(host: Host, sites: readonly FrontProxySite[]): Promise<RunningProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'tps-caddy-'));
  try {
    const config = caddyfile(sites, dir);
    const file = join(dir, 'Caddyfile');
    writeFileSync(file, config);
    const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
    execFileSync('caddy', ['validate', '--config', file, '--adapter', 'caddyfile'], { env, stdio: 'pipe', timeout: 30_000 });
    return await run(host, dir, config, sites, 'caddy', ['run', '--config', file, '--adapter', 'caddyfile'], env);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function startNginx(host: Host, sites: readonly FrontProxySite[]): Promise<RunningProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'tps-nginx-'));
  try {
    const config = nginxConf(sites, dir);
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, config);
    // -p keeps nginx's startup checks (default log path) inside the folder too.
    const args = ['-p', dir, '-c', file];
    execFileSync('nginx', ['-t', '-q', ...args], { stdio: 'pipe', timeout: 30_000 });
    return await run(host, dir, config, sites, 'nginx', [...args, '-g', 'daemon off;'], process.env);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function run(
  host: Host,
  dir: string,
  config: string,
  sites: readonly FrontProxySite[],
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<RunningProxy> {
  const child = host.spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = capture(child);
  child.stdout?.on('data', () => undefined);
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const site of sites) await waitForPort(host.address, site.port, child, output);
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, dir, config, output, stop };
}

export interface JsonProcess extends RunningProcess {
  /** The first line with `"ready": true`. */
  ready: Record<string, unknown>;
  /** Every other JSON line printed on stdout, in order. */
  lines: Record<string, unknown>[];
}

/** Calls `each` with every JSON line a process prints (blank lines skipped). */
export function onJsonLines(stream: NodeJS.ReadableStream, each: (line: Record<string, unknown>) => void): void {
  let pending = '';
  stream.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) !== -1) {
      const text = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (text.trim()) each(JSON.parse(text) as Record<string, unknown>);
    }
  });
}

/** Runs a process that prints JSON lines on stdout, and waits (bounded) for its ready line. */
/** The recording gateway (recording-gateway.ts) in `host`, listening on `listenHost:port`, verifying with the key folder. */
export function startRecordingGateway(host: Host, listenHost: string, port: number, keysDir: string): Promise<JsonProcess> {
  return startJsonProcess(host, process.execPath, [
    join(process.cwd(), 'test/support/recording-gateway.ts'),
    '--host',
    listenHost,
    '--port',
    `${port}`,
    '--keys-dir',
    keysDir,
  ]);
}

export async function startJsonProcess(host: Host, cmd: string, args: string[], timeoutMs = 10_000): Promise<JsonProcess> {
  const child = host.spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = capture(child);
  const lines: Record<string, unknown>[] = [];
  let onReady: (line: Record<string, unknown>) => void = () => undefined;
  const ready = new Promise<Record<string, unknown>>((resolve) => (onReady = resolve));
  onJsonLines(child.stdout!, (line) => (line['ready'] === true ? onReady(line) : lines.push(line)));
  const stop = () => stopChild(child);
  let timer: NodeJS.Timeout | undefined;
  try {
    const first = await Promise.race([
      ready,
      new Promise<never>((_, reject) => {
        child.once('exit', (code) => reject(new Error(`${cmd} exited (${code}) before it was ready:\n${output()}`)));
        timer = setTimeout(() => reject(new Error(`${cmd} not ready after ${timeoutMs} ms:\n${output()}`)), timeoutMs);
      }),
    ]);
    return { child, ready: first, lines, output, stop };
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------- examples

/** The documented parameters of manifests/examples/ (Kubernetes Service names). */
export const EXAMPLE_ADDRESSES = {
  port: 80,
  authService: 'oauth2-proxy.auth.svc.cluster.local:4180',
  sidecar: 'openclaw.openclaw.svc.cluster.local:8080',
  gateway: 'openclaw.openclaw.svc.cluster.local:18789',
} as const;

const EXAMPLE_HEADER = (what: string, mode: FrontProxyMode) =>
  `# ${what} in front of trusted-proxy-sidecar, ${mode} mode (see docs/forward-auth.md).\n` +
  `# Generated by test/support/front-proxies.ts; the end-to-end suite runs the same generator.\n`;

/** Example files under manifests/examples/, by path, exactly as the generators write them. */
export function exampleFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const mode of ['inline', 'forward-auth'] as const) {
    const site: FrontProxySite = { mode, ...EXAMPLE_ADDRESSES };
    files[`caddy/Caddyfile.${mode}`] = `${EXAMPLE_HEADER('Caddy', mode)}\n${caddySites([site])}`;
    files[`nginx/${mode}.conf`] = `${EXAMPLE_HEADER('nginx (http context, e.g. conf.d/)', mode)}\n${nginxSites([site])}`;
  }
  return files;
}
