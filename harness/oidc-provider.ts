// A real OpenID provider for the end-to-end suites: the certified `oidc-provider` package,
// serving discovery, JWKS, authorization, token and userinfo over TLS, with a login form
// that checks each user's password. It signs ID tokens (RS256) with a key made at start.
// Consent is granted without a prompt, as for a first-party client.
// Run as a process: `node harness/oidc-provider.ts --issuer URL --host H --port P
// --cert F --key F --users FILE.json --clients FILE.json`; prints one line
// `{"ready":true}` once listening. It imports no local .ts file, so Node runs it directly.
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type ClientMetadata } from 'oidc-provider';

export interface OidcUser {
  password: string;
  email: string;
  groups: string[];
}

const FORM_LIMIT = 8192;

async function main(): Promise<void> {
  // stdout carries only the ready line: the package's own notices go to stderr.
  console.log = console.info = console.warn = console.error;
  const { values } = parseArgs({
    options: {
      issuer: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      users: { type: 'string' },
      clients: { type: 'string' },
    },
  });
  const need = (name: keyof typeof values): string => {
    const value = values[name];
    if (value === undefined) throw new Error(`--${name} is required`);
    return value;
  };
  const users = JSON.parse(readFileSync(need('users'), 'utf8')) as Record<string, OidcUser>;
  const clients = JSON.parse(readFileSync(need('clients'), 'utf8')) as ClientMetadata[];
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'k1', use: 'sig', alg: 'RS256' };

  const provider = new Provider(need('issuer'), {
    clients,
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username'], groups: ['groups'] },
    features: { devInteractions: { enabled: false } },
    // Every granted claim in the ID token itself (oauth2-proxy reads groups from it).
    conformIdTokenClaims: false,
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx, sub) => {
      const user = Object.hasOwn(users, sub) ? users[sub] : undefined;
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: () => ({ sub, email: user.email, email_verified: true, preferred_username: sub, groups: user.groups }),
      };
    },
    // First-party clients: every scope and claim they ask for is granted without a prompt.
    loadExistingGrant: async (ctx) => {
      const accountId = ctx.oidc.session?.accountId;
      const client = ctx.oidc.client;
      if (!accountId || !client) return undefined;
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId });
      grant.addOIDCScope(String(ctx.oidc.params?.['scope'] ?? 'openid'));
      await grant.save();
      return grant;
    },
  });

  const interaction = async (req: IncomingMessage, res: ServerResponse) => {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') return sendForm(res, 200, details.uid);
    const form = new URLSearchParams(await readBody(req));
    const name = form.get('username') ?? '';
    const user = Object.hasOwn(users, name) ? users[name] : undefined;
    if (!user || !equalSecret(form.get('password') ?? '', user.password)) return sendForm(res, 401, details.uid);
    await provider.interactionFinished(req, res, { login: { accountId: name } }, { mergeWithLastSubmission: false });
  };
  const callback = provider.callback();
  const server = https.createServer({ cert: readFileSync(need('cert')), key: readFileSync(need('key')) }, (req, res) => {
    if (!req.url?.startsWith('/interaction/')) return void callback(req, res);
    interaction(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(err instanceof Error ? err.message : 'bad request');
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(Number(need('port')), need('host'), resolve));
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > FORM_LIMIT) req.destroy(new Error('form too large'));
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

function equalSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

function sendForm(res: ServerResponse, status: number, uid: string): void {
  res
    .writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    .end(
      `<!doctype html><title>Sign in to the identity provider</title>${status === 401 ? '<p id="error">Invalid username or password</p>' : ''}` +
        `<form method="post" action="/interaction/${encodeURIComponent(uid)}">` +
        `<label>Username <input name="username" autocomplete="username"></label>` +
        `<label>Password <input name="password" type="password" autocomplete="current-password"></label>` +
        `<button type="submit">Sign in</button></form>`,
    );
}

main().catch((err: unknown) => {
  process.stderr.write(`oidc-provider: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
