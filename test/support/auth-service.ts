// A small stand-in for oauth2-proxy: the session check front proxies call before they
// forward (`GET /oauth2/auth`), and a login form for browsers. Usable as a module and as
// a process: `node test/support/auth-service.ts --host H --port P --users FILE.json`
// prints one line `{"ready":true,"port":P,"cookies":{"alice":"<value>"}}` once listening.
// It imports no local .ts file, so Node runs it directly by type stripping.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface AuthUser {
  password: string;
  email: string;
  groups: string[];
}
export type AuthUsers = Record<string, AuthUser>;

export interface AuthService {
  url: string;
  port: number;
  /** A valid session cookie value for a user, as a login would have set it. */
  cookieFor(user: string): string;
  close(): Promise<void>;
}

export const COOKIE = '_oauth2_proxy';
const SESSION_SECONDS = 3600;

export async function startAuthService(users: AuthUsers, host = '127.0.0.1', port = 0): Promise<AuthService> {
  const key = randomBytes(32);
  const mac = (data: string) => createHmac('sha256', key).update(data).digest('base64url');
  const cookieFor = (user: string) => {
    const data = Buffer.from(JSON.stringify({ u: user, exp: Math.floor(Date.now() / 1000) + SESSION_SECONDS })).toString('base64url');
    return `${data}.${mac(data)}`;
  };
  const sessionUser = (req: http.IncomingMessage): string | undefined => {
    const value = cookieValue(req.headers.cookie, COOKIE);
    const [data, sig] = value?.split('.') ?? [];
    if (!data || !sig) return undefined;
    const want = Buffer.from(mac(data));
    const got = Buffer.from(sig);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    const session = JSON.parse(Buffer.from(data, 'base64url').toString()) as { u: string; exp: number };
    return session.exp > Date.now() / 1000 && Object.hasOwn(users, session.u) ? session.u : undefined;
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://auth.invalid');
    if (url.pathname === '/oauth2/auth') {
      const name = sessionUser(req);
      if (name === undefined) {
        res.writeHead(401, { 'content-type': 'text/plain' }).end('unauthorized');
        return;
      }
      const user = users[name]!;
      // Every header is always present (groups possibly empty): Caddy 2.6 copy_headers
      // copies an absent response header as its literal placeholder text.
      res
        .writeHead(202, {
          'x-auth-request-user': name,
          'x-auth-request-email': user.email,
          'x-auth-request-groups': user.groups.join(','),
        })
        .end();
      return;
    }
    if (url.pathname === '/login' && req.method === 'GET') {
      sendForm(res, 200, safeRedirect(url.searchParams.get('rd')));
      return;
    }
    if (url.pathname === '/login' && req.method === 'POST') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > 8192) req.destroy();
      });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const name = form.get('username') ?? '';
        const rd = safeRedirect(form.get('rd'));
        const user = Object.hasOwn(users, name) ? users[name] : undefined;
        if (!user || !equalSecret(form.get('password') ?? '', user.password)) {
          sendForm(res, 401, rd);
          return;
        }
        res
          .writeHead(302, {
            location: rd,
            'set-cookie': `${COOKIE}=${cookieFor(name)}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${SESSION_SECONDS}`,
          })
          .end();
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`,
    port: bound,
    cookieFor,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of header?.split(';') ?? []) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Only same-site absolute paths: an open redirect would make the form a phishing aid. */
function safeRedirect(rd: string | null): string {
  return rd && /^\/(?![/\\])[^\s]*$/.test(rd) ? rd : '/';
}

function equalSecret(a: string, b: string): boolean {
  const x = createHmac('sha256', 'compare').update(a).digest();
  const y = createHmac('sha256', 'compare').update(b).digest();
  return timingSafeEqual(x, y);
}

function sendForm(res: http.ServerResponse, status: number, rd: string): void {
  const escaped = rd.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(
    `<!doctype html><title>Sign in</title>${status === 401 ? '<p id="error">Invalid username or password</p>' : ''}` +
      `<form method="post" action="/login"><input type="hidden" name="rd" value="${escaped}">` +
      `<label>Username <input name="username" autocomplete="username"></label>` +
      `<label>Password <input name="password" type="password" autocomplete="current-password"></label>` +
      `<button type="submit">Sign in</button></form>`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' }, users: { type: 'string' } },
  });
  if (!values.users) throw new Error('--users FILE.json is required');
  const users = JSON.parse(readFileSync(values.users, 'utf8')) as AuthUsers;
  const service = await startAuthService(users, values.host, Number(values.port));
  const cookies = Object.fromEntries(Object.keys(users).map((name) => [name, service.cookieFor(name)]));
  process.stdout.write(`${JSON.stringify({ ready: true, port: service.port, cookies })}\n`);
  const stop = () => void service.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`auth-service: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
