import { loadConfigFile } from '../../config/load.js';
import { collectStartupGarbage } from '../../runtime/startup-garbage.js';
import { Sidecar } from '../../server/sidecar.js';
import { requireString, type Command } from '../command.js';

export const serve: Command = {
  name: 'serve',
  usage: `trusted-proxy-sidecar serve --config FILE

Starts the data-plane and admin listeners. The config file and the key folder are
watched: valid changes apply without a restart, invalid ones are refused and logged.
SIGUSR2 (what \`drain\` sends) begins a drain: readiness fails, responses close their
connections, and after listen.drainSeconds the data port stops listening. SIGTERM or
SIGINT lets in-flight requests finish and exits 0.`,
  options: { config: { type: 'string', short: 'c' } },
  async run({ values }) {
    const path = requireString(values, 'config');
    const result = loadConfigFile(path, { tls: true });
    if (!result.ok) {
      process.stderr.write(`invalid config ${path}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    const sidecar = new Sidecar(result.config, { configPath: path });
    collectStartupGarbage();
    await sidecar.start();
    return new Promise<number>((resolve) => {
      const shutdown = (signal: string) => {
        sidecar.runtime.logger.info({ signal }, 'shutting down');
        sidecar.stop().then(
          () => resolve(0),
          () => resolve(1),
        );
      };
      process.on('SIGUSR2', () => sidecar.drain());
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
  },
};
