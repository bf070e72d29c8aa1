// Reads and validates a config file. Every problem is reported at once, by key path, and
// the files the config names are checked in the same pass, so an operator fixes a bad file
// in one go (the oauth2-proxy way).
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { loadKeyRing } from '../assertion/keys.js';
import { configSchema, type Config } from './schema.js';
import type * as z from './zod.js';
import { tlsModule } from '../platform/tls-modules.js';

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: string[] };

/** The files a config names, checked beside the schema: TLS files (serve) and the key folder. */
export interface FileChecks {
  readonly tls?: boolean;
  readonly keys?: boolean;
}

export function parseConfig(text: string, origin = 'config', checks: FileChecks = {}): ConfigResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) return { ok: false, problems: doc.errors.map((e) => `${origin}: ${yamlProblem(e.message)}`) };
  const raw: unknown = doc.toJS();
  // Every setting has a default, and the defaults trust nobody: an empty file would start a
  // sidecar that refuses every request, which is never what its author meant.
  if (raw === null || raw === undefined)
    return { ok: false, problems: [`${origin}: the file is empty; a config needs at least trust and assertion (docs/configuration.md)`] };
  const result = configSchema.safeParse(raw);
  const problems = result.success ? [] : result.error.issues.flatMap(schemaProblems);
  problems.push(...fileProblems(raw, checks));
  if (!result.success || problems.length > 0) return { ok: false, problems };
  return { ok: true, config: result.data };
}

/** yaml's message with its code frame, each line indented under the problem. */
function yamlProblem(message: string): string {
  const [first = '', ...frame] = message.replace(/:\n\n/, '\n').split('\n');
  return [first, ...frame.filter((l) => l.trim() !== '').map((l) => `      ${l}`)].join('\n');
}

/** One line per problem; an unknown key is named with the known one it is closest to. */
function schemaProblems(issue: z.core.$ZodIssue): string[] {
  const at = issue.path.join('.') || '(root)';
  if (issue.code !== 'unrecognized_keys') return [`${at}: ${issue.message}`];
  const known = knownKeys(configSchema, issue.path);
  return issue.keys.map((key) => {
    const near = closest(key, known);
    return `${at}: unknown key "${key}"${near ? ` (did you mean "${near}"?)` : ''}`;
  });
}

/** The keys the object schema at `path` allows (through defaults, optionals and lists). */
function knownKeys(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  let current = unwrap(schema);
  for (const step of path) {
    const def = current._zod.def as SchemaDef;
    const next = typeof step === 'number' ? def.element : def.shape?.[String(step)];
    if (!next) return [];
    current = unwrap(next);
  }
  const shape = (current._zod.def as SchemaDef).shape;
  return shape ? Object.keys(shape) : [];
}

interface SchemaDef {
  innerType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  element?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
}

/** The schema under its defaults, optionals and pipes. */
function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  for (;;) {
    const def = current._zod.def as SchemaDef;
    const inner = def.innerType ?? def.in;
    if (!inner) return current;
    current = inner;
  }
}

/** The known key within a third of its length in edits (at least 2), if one is. */
function closest(key: string, known: readonly string[]): string | undefined {
  const limit = Math.max(2, Math.floor(key.length / 3));
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
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
    return [
      `listen.clientCAFile: ${code?.startsWith('E') && !code.startsWith('ERR_') ? `cannot read ${path} (${code})` : `not a PEM CA bundle (${(err as Error).message})`}`,
    ];
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
