#!/usr/bin/env node
// Bundles the command that tsc compiled (DIST/cli/main.js) into one ESM file, DIST/sidecar.js
// (and the guard into DIST/guard.js, below):
// Node's module loader walking hundreds of package files was most of the start-up time.
// The bundle sits directly in DIST so that what it resolves at run time (../package.json for
// the version, the Kubernetes client) resolves as from
// the other compiled files. The Makefile and scripts/build-runtime-tree.sh both run this.
//   node scripts/bundle.mjs [DIST]   (default: dist)
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const dist = process.argv[2] ?? 'dist';
const outfile = join(dist, 'sidecar.js');

// The Kubernetes client stays out of the bundle (it is large) and loads only when a discovery
// source is configured. esbuild would hoist discovery's static imports of it to the top of the
// bundle and so load it at every start; routing them through a module that awaits import()
// keeps it lazy: that module runs only when discovery, itself imported on demand, first does.
const LAZY = '@kubernetes/client-node';
const lazyNames = Object.keys(await import(LAZY));

const lazyExternal = {
  name: 'lazy-external',
  setup(b) {
    b.onResolve({ filter: /^@kubernetes\/client-node$/ }, (args) =>
      args.namespace === 'lazy' ? { path: LAZY, external: true } : { path: LAZY, namespace: 'lazy' },
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      contents: `const m = await import(${JSON.stringify(LAZY)});\nexport const { ${lazyNames.join(', ')} } = m;\n`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [join(dist, 'cli/main.js')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  // Bundled CommonJS code requires Node's built-ins; an ES module has no `require` of its own.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  plugins: [lazyExternal],
  // The input is tsc's JavaScript: no tsconfig.json found around DIST may change the output.
  tsconfigRaw: {},
  logLevel: 'warning',
});
asciiOnly(outfile);
chmodSync(outfile, 0o755);

// The guard (`node --import trusted-proxy-sidecar/guard`) runs inside the gateway's process,
// which has none of the sidecar's packages: one file with everything it needs.
/**
 * V8 keeps a script's source in memory, one byte per character only if every character is
 * Latin-1, else two: a single "→" in a comment doubles the bundle's 3 MB. esbuild escapes
 * non-ASCII characters everywhere but in comments (charset: ascii, its default), where the
 * same escape is inert.
 */
function asciiOnly(file) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

await build({
  entryPoints: [join(dist, 'guard/preload.js')],
  outfile: join(dist, 'guard.js'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  tsconfigRaw: {},
  logLevel: 'warning',
});
asciiOnly(join(dist, 'guard.js'));
