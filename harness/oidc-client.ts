// One OpenID client of the test provider (harness/oidc-provider.ts) and the
// oauth2-proxy that signs users in as it: what the suites and the benchmark share of the
// provider's command line and of oauth2-proxy's OIDC settings. Each caller adds how its
// oauth2-proxy runs (where it listens, what it answers) and starts the processes where it
// needs them (a test host, or loopback).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { OidcUser } from './oidc-provider.js';
import type { TestCa } from './test-ca.js';

export interface OidcClient {
  /** The provider's issuer URL (https, under the test CA). */
  issuer: string;
  ca: TestCa;
  /** Where oauth2-proxy's callback is, as the browser reaches it. */
  redirectUrl: string;
  /** The client's name, at the provider and in oauth2-proxy. */
  id: string;
  secret: string;
}

export function oidcClient(issuer: string, ca: TestCa, redirectUrl: string, id = 'openclaw'): OidcClient {
  return { issuer, ca, redirectUrl, id, secret: randomBytes(24).toString('base64url') };
}

/** The provider's command line (for `node`), its users and this client written to `dir`. */
export function providerArgs(dir: string, client: OidcClient, users: Record<string, OidcUser>, listen: { host: string; port: number }): string[] {
  const usersFile = join(dir, 'idp-users.json');
  const clientsFile = join(dir, 'idp-clients.json');
  writeFileSync(usersFile, JSON.stringify(users));
  writeFileSync(
    clientsFile,
    JSON.stringify([
      {
        client_id: client.id,
        client_secret: client.secret,
        redirect_uris: [client.redirectUrl],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ]),
  );
  // prettier-ignore
  return [resolve('harness/oidc-provider.ts'), '--issuer', client.issuer, '--host', listen.host, '--port', String(listen.port),
    '--cert', client.ca.certFile, '--key', client.ca.keyFile, '--users', usersFile, '--clients', clientsFile];
}

/**
 * oauth2-proxy's settings for signing users in as this client (flag names without `--`):
 * what an install leaves to its user (client, provider, cookie secret), and the test CA.
 */
export function oauth2ProxyOidcSettings(client: OidcClient): Record<string, string> {
  return {
    provider: 'oidc',
    'oidc-issuer-url': client.issuer,
    'provider-ca-file': client.ca.caFile,
    'client-id': client.id,
    'client-secret': client.secret,
    'redirect-url': client.redirectUrl,
    'cookie-secret': randomBytes(16).toString('hex'),
  };
}

/** Settings as oauth2-proxy's command line. */
export function flags(settings: Record<string, string | boolean>): string[] {
  return Object.entries(settings).map(([name, value]) => `--${name}=${String(value)}`);
}
