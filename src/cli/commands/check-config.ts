import { loadKeyRing } from '../../assertion/keys.js';
import { loadConfigFile } from '../../config/load.js';
import { requireString, type Command } from '../command.js';

export const checkConfig: Command = {
  name: 'check-config',
  usage: `trusted-proxy-sidecar check-config --config FILE [--keys]

Lists every problem by key path and exits 2, or prints "ok" and exits 0.
--keys also checks the key folder the config names.`,
  options: { config: { type: 'string', short: 'c' }, keys: { type: 'boolean' } },
  async run({ values }) {
    const path = requireString(values, 'config');
    const result = loadConfigFile(path);
    const problems = result.ok ? [] : result.problems;
    if (result.ok && values.keys) {
      const ring = loadKeyRing(result.config.assertion.keysDir, result.config.assertion.activeKeyId);
      if (ring.activeKeyId === undefined) problems.push(...ring.problems.map((p) => `assertion: ${p}`));
    }
    if (problems.length > 0) {
      process.stderr.write(`invalid config ${path}:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    process.stdout.write('ok\n');
    return 0;
  },
};
