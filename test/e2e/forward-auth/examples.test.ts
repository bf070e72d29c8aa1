// The examples users copy are the ones the suites proved: the Caddyfiles and nginx configs
// are exactly the generators' output, and the Traefik objects satisfy Traefik's CRD schema
// (test/reliability/real-stack.test.ts applies them to a real API server and sends traffic
// through the Traefik that reads them).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IngressRoute, Middleware } from '@kubernetes-models/traefik/traefik.io/v1alpha1';
import { parseAllDocuments } from 'yaml';
import { exampleFiles, SIDECAR_GRANT_HEADERS } from '../../support/front-proxies.js';

const examples = join(process.cwd(), 'manifests/examples');
const read = (path: string) => readFileSync(join(examples, path), 'utf8');
const docsOf = (path: string) => parseAllDocuments(read(path)).map((d) => d.toJS() as Record<string, unknown>);

test.each(Object.entries(exampleFiles()))('%s is what the generator writes', (path, content) => {
  expect(read(path)).toBe(content);
});

test('no example file is left over from an older generator', () => {
  const generated = Object.keys(exampleFiles());
  for (const folder of ['caddy', 'nginx']) {
    for (const name of readdirSync(join(examples, folder))) expect(generated).toContain(`${folder}/${name}`);
  }
});

test.each(['Caddyfile.inline', 'Caddyfile.forward-auth'])('caddy validate accepts caddy/%s', (name) => {
  const home = mkdtempSync(join(tmpdir(), 'tps-caddy-validate-'));
  try {
    const env = { ...process.env, HOME: home, XDG_DATA_HOME: home, XDG_CONFIG_HOME: home };
    execFileSync('caddy', ['validate', '--config', join(examples, 'caddy', name), '--adapter', 'caddyfile'], { env, stdio: 'pipe', timeout: 30_000 });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test.each(['traefik/forward-auth.yaml', 'traefik/inline.yaml'])('%s holds valid Traefik Middleware and IngressRoute objects', (path) => {
  const docs = docsOf(path);
  const middlewares = docs.filter((d) => d['kind'] === 'Middleware');
  const routes = docs.filter((d) => d['kind'] === 'IngressRoute');
  expect(middlewares.length + routes.length).toBe(docs.length);
  expect(routes).toHaveLength(1);
  for (const m of middlewares) expect(() => new Middleware(m as never).validate()).not.toThrow();
  for (const r of routes) expect(() => new IngressRoute(r as never).validate()).not.toThrow();
  // Every middleware a route names is defined in the same file.
  const names = new Set(middlewares.map((m) => (m['metadata'] as { name: string }).name));
  const route = new IngressRoute(routes[0] as never);
  for (const r of route.spec.routes) for (const m of r.middlewares ?? []) expect(names).toContain(m.name);
});

test('the CRD schema check is real: a wrong type or a missing required field is refused', () => {
  const [oauth] = docsOf('traefik/forward-auth.yaml');
  const spec = (oauth!['spec'] as { forwardAuth: Record<string, unknown> }).forwardAuth;
  expect(() => new Middleware({ ...oauth, spec: { forwardAuth: { ...spec, authResponseHeaders: 'X-Auth-Request-User' } } } as never).validate()).toThrow();
  const [, , route] = docsOf('traefik/forward-auth.yaml');
  const spec2 = route!['spec'] as { routes: Record<string, unknown>[] };
  expect(() => new IngressRoute({ ...route, spec: { ...spec2, routes: [{ ...spec2.routes[0], match: undefined }] } } as never).validate()).toThrow();
});

test('in forward-auth mode Traefik copies exactly what the sidecar answers with, and never trusts client X-Forwarded-*', () => {
  const docs = docsOf('traefik/forward-auth.yaml');
  const route = new IngressRoute(docs.find((d) => d['kind'] === 'IngressRoute') as never);
  const chain = route.spec.routes.find((r) => r.middlewares)!.middlewares!.map((m) => m.name);
  const byName = new Map(docs.filter((d) => d['kind'] === 'Middleware').map((d) => [(d['metadata'] as { name: string }).name, d]));
  const forwardAuth = (name: string) => (byName.get(name)!['spec'] as { forwardAuth: Record<string, unknown> }).forwardAuth;
  // oauth2-proxy first, then the sidecar, whose answer headers are copied.
  expect(String(forwardAuth(chain[0]!)['address'])).toMatch(/^http:\/\/oauth2-proxy\./);
  expect(String(forwardAuth(chain[1]!)['address'])).toMatch(/\/forward-auth$/);
  // oauth2-proxy's answer adds the ID token; the sidecar's never has it, so Traefik drops it
  // from the request before the gateway.
  expect(forwardAuth(chain[0]!)['authResponseHeaders']).toContain('Authorization');
  expect(forwardAuth(chain[1]!)['authResponseHeaders']).toEqual([...SIDECAR_GRANT_HEADERS, 'Authorization']);
  for (const name of chain) expect(forwardAuth(name)['trustForwardHeader']).toBe(false);
});
