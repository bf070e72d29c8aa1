// docs/install.md is the configuration the real-stack suites ran: its oauth2-proxy values
// are the flags test/support/real-ingress.ts starts oauth2-proxy with, and its chart values
// for Traefik are those manifests/examples/traefik/inline.yaml is rendered from (the file
// the suites apply to the API server). These checks keep the three from drifting apart.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { installGuideOauth2ProxyValues, PUBLIC_ORIGIN } from '../support/real-ingress.js';

const ROOT = join(import.meta.dirname, '..', '..');
const guide = readFileSync(join(ROOT, 'docs', 'install.md'), 'utf8');
const chartValues = parse(/`my-values\.yaml`:\n\n```yaml\n([\s\S]*?)```/.exec(guide)![1]!) as { publicUrl: string; traefik: Record<string, any> };
const exampleValues = parse(readFileSync(join(ROOT, 'manifests', 'examples', 'traefik', 'values.yaml'), 'utf8')) as { traefik: Record<string, any> };
const oauth2Proxy = installGuideOauth2ProxyValues();

test("the guide's public URL is the suites' and oauth2-proxy's callback is on it", () => {
  expect(chartValues.publicUrl).toBe(PUBLIC_ORIGIN);
  expect(oauth2Proxy.extraArgs['redirect-url']).toBe(`${PUBLIC_ORIGIN}/oauth2/callback`);
});

test('oauth2-proxy runs as the Traefik objects expect: reverse proxy, identity headers, a static 202 for a session', () => {
  expect(oauth2Proxy.extraArgs).toMatchObject({ 'reverse-proxy': true, 'set-xauthrequest': true, upstream: 'static://202' });
});

test("the guide's chart values for Traefik are those the tested example is rendered from", () => {
  const { tls: guideTls, ...guide } = chartValues.traefik;
  const { tls: exampleTls, ...example } = exampleValues.traefik;
  expect(guide).toEqual(example);
  // Only the certificate's source differs: a resolver in the guide, a Secret in the suites.
  expect(Object.keys(guideTls)).toEqual(['certResolver']);
  expect(Object.keys(exampleTls)).toEqual(['secretName']);
});
