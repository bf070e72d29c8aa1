// Writes the trust and auth keys of an OpenClaw gateway config so that it agrees with the
// sidecar in front of it. OpenClaw keeps its config on its volume and edits it at run
// time, so this merges into the persisted file on every start instead of owning it.
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import JSON5 from 'json5';
import type { Config } from '../config/schema.js';
import { ADMIN_SCOPE, DEFAULT_AUTO_APPROVE_SCOPES, originOf, sidecarSourceAddresses, upstreamPort } from './facts.js';

export interface MergeOptions {
  /** The URL users open (e.g. https://claw.example.com): the Control UI's allowed origin. */
  publicOrigin: string;
  /** Most a new browser device is granted automatically; never operator.admin. */
  deviceAutoApproveScopes?: string[];
  /** The gateway's port; must be the port of the sidecar's upstream URL (its default). */
  port?: number;
}

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object at `key`, created when absent; a non-object there is an error, not overwritten. */
function objectAt(parent: Obj, key: string, path: string): Obj {
  const value = parent[key];
  if (value === undefined) return (parent[key] = {});
  if (!isObject(value)) throw new Error(`${path} is not an object`);
  return value;
}

export function mergeGatewayConfig(existing: unknown, sidecar: Config, options: MergeOptions): object {
  if (existing !== undefined && existing !== null && !isObject(existing)) throw new Error('the gateway config is not an object');
  const config: Obj = existing ? structuredClone(existing) : {};

  const origin = originOf(options.publicOrigin);
  if (!origin) throw new Error(`public origin ${options.publicOrigin} is not an http(s) URL`);
  if (!sidecarSourceAddresses(sidecar)) {
    throw new Error(`the sidecar's upstream ${sidecar.upstream.url} is not on loopback, where the gateway is bound`);
  }
  const port = options.port ?? upstreamPort(sidecar);
  if (port !== upstreamPort(sidecar)) {
    throw new Error(`port ${port} is not the port of the sidecar's upstream ${sidecar.upstream.url}`);
  }
  if (!sidecar.gateway.userHeader) throw new Error('the sidecar sends no user header (gateway.userHeader is empty)');
  const scopes = options.deviceAutoApproveScopes ?? DEFAULT_AUTO_APPROVE_SCOPES;
  if (scopes.length === 0 || scopes.includes(ADMIN_SCOPE)) {
    throw new Error(`device auto-approve scopes must be a non-empty list without ${ADMIN_SCOPE}`);
  }

  const gateway = objectAt(config, 'gateway', 'gateway');
  gateway['mode'] ??= 'local';
  gateway['bind'] = 'loopback';
  gateway['port'] = port;
  // Only the sidecar on the pod's loopback may assert identities.
  gateway['trustedProxies'] = ['127.0.0.1', '::1'];

  const auth = objectAt(gateway, 'auth', 'gateway.auth');
  auth['mode'] = 'trusted-proxy';
  // OpenClaw refuses to start with a shared token in trusted-proxy mode.
  delete auth['token'];
  const trustedProxy = objectAt(auth, 'trustedProxy', 'gateway.auth.trustedProxy');
  trustedProxy['userHeader'] = sidecar.gateway.userHeader;
  // Headers only the sidecar sets: a request that did not pass it lacks the assertion.
  trustedProxy['requiredHeaders'] = [sidecar.assertion.header, 'x-forwarded-proto'];
  trustedProxy['allowLoopback'] = true;
  trustedProxy['deviceAutoApprove'] = { enabled: true, scopes: [...scopes] };

  const controlUi = objectAt(gateway, 'controlUi', 'gateway.controlUi');
  const origins = controlUi['allowedOrigins'];
  if (origins !== undefined && !(Array.isArray(origins) && origins.every((o) => typeof o === 'string'))) {
    throw new Error('gateway.controlUi.allowedOrigins is not a list of strings');
  }
  const listed = (origins as string[] | undefined) ?? [];
  controlUi['allowedOrigins'] = listed.some((o) => originOf(o) === origin) ? listed : [...listed, origin];
  return config;
}

/** Reads a JSON5 gateway config; undefined when the file does not exist yet. */
export function readGatewayConfig(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON5.parse(text);
}

/**
 * Replaces the file atomically (temp file in the same folder, then rename), keeping its
 * mode: the gateway never reads a half-written config.
 */
export function writeGatewayConfig(path: string, config: object): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  let mode = 0o600;
  try {
    mode = statSync(path).mode & 0o777;
  } catch {
    /* a new file */
  }
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(temp, `${JSON.stringify(config, null, 2)}\n`, { mode, flush: true });
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}
