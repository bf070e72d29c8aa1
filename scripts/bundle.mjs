#!/usr/bin/env node
// Bundles the command that tsc compiled (DIST/cli/main.js) into one ESM file, DIST/sidecar.js
// (and the guard into DIST/guard.js, below):
// Node's module loader walking hundreds of package files was most of the start-up time.
// The bundle sits directly in DIST so that what it resolves at run time (../package.json for
// the version, the Kubernetes client) resolves as from
// the other compiled files. The Makefile and scripts/build-runtime-tree.sh both run this.
//   node scripts/bundle.mjs [DIST]   (default: dist)
import { chmodSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { asciiOnly, builtinsByRequire, common } from './bundle-options.mjs';

const dist = process.argv[2] ?? 'dist';
const outfile = join(dist, 'sidecar.js');

// The Kubernetes client and undici (which only discovery's informer uses) stay out of the
// bundle and load only when a discovery source is configured: the client is large, and
// undici's 1.5 MB of source, bundled, cost every sidecar 2.6 MB of idle memory. esbuild
// would hoist discovery's static imports of them to the top of the bundle and so load them at
// every start; routing them through a module that awaits import() keeps them lazy: that
// module runs only when discovery, itself imported on demand, first does.
const LAZY = ['@kubernetes/client-node', 'undici'];
const pattern = (name) => name.replace(/[/.]/g, '\\$&');

/**
 * The names the compiled code imports from `pkg` (tsc has dropped the type-only ones), each
 * checked against what the package exports. The module that stands in for it exports only
 * these: every name the client exports, 86 KB of them, was source text V8 keeps in memory
 * for as long as the sidecar runs (0.5 MB of idle RSS; docs/decisions/0007-idle-memory.md).
 */
async function importedNames(pkg) {
  const exported = new Set(Object.keys(await import(pkg)));
  const statement = new RegExp(`^import\\s+([^;]*?)\\s*from\\s*["']${pattern(pkg)}["']`, 'gm');
  const names = new Set();
  for (const file of readdirSync(dist, { recursive: true })) {
    if (!file.endsWith('.js') || file === 'sidecar.js' || file === 'guard.js') continue;
    for (const [, clause] of readFileSync(join(dist, file), 'utf8').matchAll(statement)) {
      const named = /^\{([^}]*)\}$/.exec(clause.trim());
      if (!named) throw new Error(`${file}: import ${clause} from '${pkg}': only named imports can load on demand`);
      for (const specifier of named[1].split(',')) {
        const name = specifier.trim().split(/\s+as\s+/)[0];
        if (!name) continue;
        if (!exported.has(name)) throw new Error(`${file}: '${pkg}' exports no ${name}`);
        names.add(name);
      }
    }
  }
  return [...names].sort();
}
const lazyNames = Object.fromEntries(await Promise.all(LAZY.map(async (pkg) => [pkg, await importedNames(pkg)])));
const lazyFilter = new RegExp(`^(${LAZY.map(pattern).join('|')})$`);

const lazyExternal = {
  name: 'lazy-external',
  setup(b) {
    b.onResolve({ filter: lazyFilter }, (args) => (args.namespace === 'lazy' ? { path: args.path, external: true } : { path: args.path, namespace: 'lazy' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents: `const m = await import(${JSON.stringify(args.path)});\nexport const { ${lazyNames[args.path].join(', ')} } = m;\n`,
      loader: 'js',
    }));
  },
};

await build({ ...common, entryPoints: [join(dist, 'cli/main.js')], outfile, plugins: [lazyExternal, builtinsByRequire] });
asciiOnly(outfile);
chmodSync(outfile, 0o755);

// The guard (`node --import trusted-proxy-sidecar/guard`) runs inside the gateway's process,
// which has none of the sidecar's packages: one file with everything it needs.
await build({ ...common, entryPoints: [join(dist, 'guard/preload.js')], outfile: join(dist, 'guard.js'), plugins: [builtinsByRequire] });
asciiOnly(join(dist, 'guard.js'));
