// What every bundle of this project is built with: scripts/bundle.mjs (the command and the
// guard) and the benchmark's idle-memory floor (bench/idle-floor.ts), which must load Node's
// built-ins and the dependencies exactly as the shipped bundle does.
import { readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';

// Node's built-ins are required, not imported: an ES module namespace of a built-in reads
// every export, getters included, so importing node:http loaded Node's own fetch
// (http.WebSocket) and HTTP/2, node:fs its promises API: 2.6 MB of idle memory that
// nothing here uses. esbuild then reads each name off the module where it is used.
const BUILTIN = new RegExp(`^(node:)?(${builtinModules.map((name) => name.replace(/[/.]/g, '\\$&')).join('|')})$`);
export const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: BUILTIN }, (args) =>
      args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin' } : { path: args.path, external: true },
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});\n`, loader: 'js' }));
  },
};

export const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  // Bundled CommonJS code, and builtinsByRequire, require Node's built-ins; an ES module has
  // no `require` of its own.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  // The input is tsc's JavaScript: no tsconfig.json found around DIST may change the output.
  tsconfigRaw: {},
  logLevel: 'warning',
};

/**
 * V8 keeps a script's source in memory, one byte per character only if every character is
 * Latin-1, else two: a single "→" in a comment doubles the bundle's size. esbuild escapes
 * non-ASCII characters everywhere but in comments (charset: ascii, its default), where the
 * same escape is inert.
 */
export function asciiOnly(file) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(
    file,
    text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  );
}
