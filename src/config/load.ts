// Reads and validates a config file. Every problem is reported at once, by key path,
// so an operator fixes a bad file in one go (the oauth2-proxy way).
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { configSchema, type Config } from './schema.js';

export type ConfigResult = { ok: true; config: Config } | { ok: false; problems: string[] };

export function parseConfig(text: string, origin = 'config'): ConfigResult {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { ok: false, problems: doc.errors.map((e) => `${origin}: ${e.message.split('\n')[0]}`) };
  }
  const result = configSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    return {
      ok: false,
      problems: result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    };
  }
  return { ok: true, config: result.data };
}

export function loadConfigFile(path: string): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, problems: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseConfig(text, path);
}
