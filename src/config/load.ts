// Reads and validates a config file. Every problem is reported at once, by key path, and
// the files the config names are checked in the same pass, so an operator fixes a bad file
// in one go (the oauth2-proxy way).
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { loadKeyRing } from '../assertion/keys.js';
import { configSchema, type Config } from './schema.js';
import { tlsModule } from '../runtime/tls-modules.js';

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: string[] };

/** The files a config names, checked beside the schema: TLS files (serve) and the key folder. */
export interface FileChecks {
  readonly tls?: boolean;
  readonly keys?: boolean;
}

export function parseConfig(text: string, origin = 'config', checks: FileChecks = {}): ConfigResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { ok: false, problems: doc.errors.map((e) => `${origin}: ${e.message.split('\n')[0]}`) };
  }
  const raw: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(raw);
  const problems = result.success ? [] : result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
  problems.push(...fileProblems(raw, checks));
  if (!result.success || problems.length > 0) return { ok: false, problems };
  return { ok: true, config: result.data };
}

export function loadConfigFile(path: string, checks: FileChecks = {}): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseConfig(text, path, checks);
}

/**
 * Problems with the files the config names. Each section is read on its own, so a schema
 * error elsewhere in the file does not hide a missing certificate or key folder.
 */
function fileProblems(raw: unknown, checks: FileChecks): string[] {
  const problems: string[] = [];
  if (checks.tls) {
    const listen = section(raw, 'listen');
    if (listen?.certFile && listen.keyFile) problems.push(...tlsProblems(listen.certFile, listen.keyFile));
    if (listen?.clientCAFile) problems.push(...clientCAProblems(listen.clientCAFile));
  }
  if (checks.keys) {
    const assertion = section(raw, 'assertion');
    if (assertion) {
      const ring = loadKeyRing(assertion.keysDir, assertion.activeKeyId, assertion.algorithm);
      if (ring.activeKeyId === undefined) problems.push(...ring.problems.map((p) => `assertion: ${p}`));
    }
  }
  return problems;
}

type Sections = typeof configSchema.shape;

/** One top-level section with its defaults, or undefined when that section itself is invalid. */
function section<K extends 'listen' | 'assertion'>(raw: unknown, key: K): Config[K] | undefined {
  const value = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)[key] : undefined;
  const parsed = (configSchema.shape as Sections)[key].safeParse(value ?? {});
  return parsed.success ? (parsed.data as Config[K]) : undefined;
}

function clientCAProblems(path: string): string[] {
  try {
    tlsModule().createSecureContext({ ca: readFileSync(path) });
    return [];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return [`listen.clientCAFile: ${code?.startsWith('E') && !code.startsWith('ERR_') ? `cannot read ${path} (${code})` : `not a PEM CA bundle (${(err as Error).message})`}`];
  }
}

function tlsProblems(certFile: string, keyFile: string): string[] {
  const problems: string[] = [];
  const read = (path: string, key: string): Buffer | undefined => {
    try {
      return readFileSync(path);
    } catch (err) {
      problems.push(`listen.${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
  };
  const cert = read(certFile, 'certFile');
  const key = read(keyFile, 'keyFile');
  if (cert && key) {
    try {
      tlsModule().createSecureContext({ cert, key });
    } catch (err) {
      problems.push(`listen.certFile, listen.keyFile: not a usable certificate and key (${(err as Error).message})`);
    }
  }
  return problems;
}
