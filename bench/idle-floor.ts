// The idle-memory floor: Node with the built-ins and the dependencies the sidecar loads at
// start, each used once as the sidecar uses it (a log line, the metrics registry with its
// default metrics, scraped; a YAML document and a schema parsed; a CIDR; an HMAC), and a
// data and an admin listener, but none of the sidecar's own code. Like the command, it
// collects its start-up garbage before it listens (src/runtime/startup-garbage.ts).
// coldstart.ts bundles it as the command is bundled (scripts/bundle-options.mjs) and reads
// its RSS as the sidecar's: what the sidecar's idle RSS cannot go below without dropping a
// dependency.
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import ipaddr from 'ipaddr.js';
import { pino } from 'pino';
import { parseDocument } from 'yaml';
import * as z from '../src/config/zod.js';
import { collectDefaultMetrics, Counter, Registry } from '../src/metrics/prom-client.js';
import { collectStartupGarbage } from '../src/runtime/startup-garbage.js';

const [configPath, dataPort, adminPort] = process.argv.slice(2) as [string, string, string];
const logger = pino();
const registry = new Registry();
collectDefaultMetrics({ register: registry });
new Counter({ name: 'floor_total', help: 'floor', registers: [registry] }).inc();
const config = z.looseObject({ listen: z.looseObject({ port: z.number() }) }).parse(parseDocument(readFileSync(configPath, 'utf8')).toJS());
ipaddr.parseCIDR('10.0.0.0/8');
createHmac('sha256', 'floor').update(String(config.listen.port)).digest();
collectStartupGarbage();
http.createServer((_req, res) => res.end()).listen(Number(dataPort), '127.0.0.1');
await registry.metrics();
http.createServer((_req, res) => res.end()).listen(Number(adminPort), '127.0.0.1', () => logger.info('listening'));
