// The linter `make test` runs (typescript-eslint, with types): the rules that catch what
// review used to, and the import boundaries that keep today's traps closed.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.run/**', '.tools/**', '.cache/**', 'reports/**', 'tools/**', 'examples/**', '**/*.mjs', '**/*.js'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin, 'import-x': importX },
    // `./x.js` in an import is `./x.ts` here: resolved as tsc does, or no-cycle sees nothing.
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
    rules: {
      // A union switched over names every member, or says why not (default).
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // A promise nobody awaits fails unseen: await it, or mark it `void` where that is meant.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/discovery/**'],
    rules: {
      // Types may come from anywhere: only what loads at run time is restricted.
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@kubernetes/client-node',
              allowTypeImports: true,
              message: 'The Kubernetes client loads only under src/discovery/ (about 85 MB), and only when a discovery source is configured.',
            },
            { name: 'undici', allowTypeImports: true, message: 'undici is for discovery only (src/discovery/); the data plane has its own client.' },
            {
              name: 'prom-client',
              allowTypeImports: true,
              message: 'Import prom-client through src/metrics/prom-client.ts, which loads only the parts the sidecar uses.',
            },
          ],
          patterns: [{ group: ['prom-client/*'], allowTypeImports: true, message: 'prom-client internals only through src/metrics/prom-client.ts.' }],
        },
      ],
    },
  },
  {
    files: ['src/metrics/prom-client.ts', 'src/metrics/prom-client-parts.d.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': 'off' },
  },
  {
    // The benchmark and the tests share harness/; neither reaches into the other.
    files: ['bench/**/*.ts', 'harness/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ group: ['**/test/*', '**/test/**'], message: 'Shared code lives in harness/.' }] }],
    },
  },
);
