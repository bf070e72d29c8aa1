#!/usr/bin/env node
// Bundles the command that tsc compiled (DIST/cli/main.js) into one ESM file, DIST/sidecar.js
// (and the guard into DIST/guard.js, below):
// Node's module loader walking hundreds of package files was most of the start-up time.
// The bundle sits directly in DIST so that what it resolves at run time (../package.json for
// the version, the Kubernetes client) resolves as from
// the other compiled files. The Makefile and scripts/build-runtime-tree.sh both run this.
//   node scripts/bundle.mjs [DIST]   (default: dist)
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';

const dist = process.argv[2] ?? 'dist';
const outfile = join(dist, 'sidecar.js');

// The Kubernetes client and undici (which only discovery's informer uses) stay out of the
// bundle and load only when a discovery source is configured: the client is large, and
// undici's 1.5 MB of source, bundled, cost every sidecar 2.6 MB of idle memory. esbuild
// would hoist discovery's static imports of them to the top of the bundle and so load them at
// every start; routing them through a module that awaits import() keeps them lazy: that
// module runs only when discovery, itself imported on demand, first does.
const LAZY = ['@kubernetes/client-node', 'undici'];
// A CommonJS package's namespace also holds names such as `module.exports` and `default`.
const binding = (name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default';
const lazyNames = Object.fromEntries(await Promise.all(LAZY.map(async (pkg) => [pkg, Object.keys(await import(pkg)).filter(binding)])));
const lazyFilter = new RegExp(`^(${LAZY.map((name) => name.replace(/[/.]/g, '\\$&')).join('|')})$`);

const lazyExternal = {
  name: 'lazy-external',
  setup(b) {
    b.onResolve({ filter: lazyFilter }, (args) =>
      args.namespace === 'lazy' ? { path: args.path, external: true } : { path: args.path, namespace: 'lazy' },
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents: `const m = await import(${JSON.stringify(args.path)});\nexport const { ${lazyNames[args.path].join(', ')} } = m;\n`,
      loader: 'js',
    }));
  },
};

// Node's built-ins are required, not imported: an ES module namespace of a built-in reads
// every export, getters included, so importing node:http loaded Node's own fetch
// (http.WebSocket) and HTTP/2, node:fs its promises API: 2.6 MB of idle memory that
// nothing here uses. esbuild then reads each name off the module where it is used.
const BUILTIN = new RegExp(`^(node:)?(${builtinModules.map((name) => name.replace(/[/.]/g, '\\$&')).join('|')})$`);
const builtinsByRequire = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: BUILTIN }, (args) =>
      args.kind === 'import-statement' ? { path: args.path, namespace: 'builtin' } : { path: args.path, external: true },
    );
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});\n`, loader: 'js' }));
  },
};

const common = {
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

await build({ ...common, entryPoints: [join(dist, 'cli/main.js')], outfile, plugins: [lazyExternal, builtinsByRequire] });
asciiOnly(outfile);
chmodSync(outfile, 0o755);

/**
 * V8 keeps a script's source in memory, one byte per character only if every character is
 * Latin-1, else two: a single "→" in a comment doubles the bundle's size. esbuild escapes
 * non-ASCII characters everywhere but in comments (charset: ascii, its default), where the
 * same escape is inert.
 */
function asciiOnly(file) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

// The guard (`node --import trusted-proxy-sidecar/guard`) runs inside the gateway's process,
// which has none of the sidecar's packages: one file with everything it needs.
await build({ ...common, entryPoints: [join(dist, 'guard/preload.js')], outfile: join(dist, 'guard.js'), plugins: [builtinsByRequire] });
asciiOnly(join(dist, 'guard.js'));
