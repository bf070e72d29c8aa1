// Every key the schema accepts is documented, so docs/configuration.md stays true to the code.
import { readFileSync } from 'node:fs';
import { configSchema } from '../../src/config/schema.js';

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

function leafPaths(value: unknown, prefix: string): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length === 0) return [prefix];
  // Discovery keys are documented with the sources, in kubernetes.md.
  if (prefix === 'trust.discovery' || prefix === 'gateway.scopes') return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leafPaths(v, prefix ? `${prefix}.${k}` : k));
}

test.each(leafPaths(configSchema.parse({}), ''))('docs/configuration.md documents %s', (path) => {
  expect(doc).toContain(`\`${path}`);
});
