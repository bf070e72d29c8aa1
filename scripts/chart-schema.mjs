#!/usr/bin/env node
// Writes `sidecar.config` of charts/trusted-proxy-sidecar/values.schema.json from the
// sidecar's one config schema (src/config/schema.ts, built into dist/ by `make build`), so
// that Helm refuses at install what the sidecar would refuse at start (an unknown key, a
// CIDR out of range), and the two cannot drift. Left out: what the chart sets itself.
//   node scripts/chart-schema.mjs          rewrite values.schema.json
//   node scripts/chart-schema.mjs --check  exit 1 when it differs (a test runs this)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toJSONSchema } from 'zod/v4/core';
import { configSchema } from '../dist/config/schema.js';

const FILE = join(import.meta.dirname, '..', 'charts', 'trusted-proxy-sidecar', 'values.schema.json');

/** What templates/_helpers.tpl (tps.sidecarConfig) sets from other values; a value given here would be overridden. */
const SET_BY_CHART = {
  admin: true,
  listen: ['host', 'port', 'allowedOrigins', 'certFile', 'keyFile', 'clientCAFile'],
  upstream: ['url'],
  assertion: ['keysDir', 'activeKeyId', 'algorithm', 'jwksFile'],
};

export function configValuesSchema() {
  const schema = toJSONSchema(configSchema, { io: 'input', unrepresentable: 'throw' });
  delete schema.$schema;
  delete schema.default;
  for (const [section, keys] of Object.entries(SET_BY_CHART)) {
    if (keys === true) {
      delete schema.properties[section];
      continue;
    }
    for (const key of keys) {
      if (!(key in schema.properties[section].properties)) throw new Error(`${section}.${key} is not in the config schema`);
      delete schema.properties[section].properties[key];
      schema.properties[section].required = schema.properties[section].required?.filter((k) => k !== key);
    }
  }
  return {
    description:
      "The sidecar's own config (docs/configuration.md), generated from its schema by scripts/chart-schema.mjs; cross-field rules are checked by the sidecar at start. listen.host/port/allowedOrigins and the TLS files, admin, upstream.url and the assertion's keys and algorithm are set by the chart.",
    ...schema,
  };
}

const values = JSON.parse(readFileSync(FILE, 'utf8'));
values.properties.sidecar.properties.config = configValuesSchema();
const text = `${JSON.stringify(values, null, 2)}\n`;
if (process.argv.includes('--check')) {
  if (readFileSync(FILE, 'utf8') !== text) {
    process.stderr.write('values.schema.json differs from the config schema: run node scripts/chart-schema.mjs\n');
    process.exit(1);
  }
} else {
  writeFileSync(FILE, text);
}
