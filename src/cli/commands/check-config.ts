import { loadConfigFile } from '../../config/load.js';
import { requireString, type Command } from '../command.js';

export const checkConfig: Command = {
  name: 'check-config',
  usage: `trusted-proxy-sidecar check-config --config FILE [--keys]

Lists every problem by key path and exits 2, or prints "ok" and exits 0. The TLS
files the config names are checked too; --keys also checks the key folder.`,
  options: { config: { type: 'string', short: 'c' }, keys: { type: 'boolean' } },
  async run({ values }) {
    const path = requireString(values, 'config');
    const result = loadConfigFile(path, { tls: true, keys: values.keys === true });
    if (!result.ok) {
      process.stderr.write(`invalid config ${path}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    process.stdout.write('ok\n');
    return 0;
  },
};
