import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfigFile } from '../../config/load.js';
import { requireString, type Command } from '../command.js';

export const drain: Command = {
  name: 'drain',
  usage: `trusted-proxy-sidecar drain --config FILE

For a preStop hook: tells the \`serve\` process of this command that runs with the same
config file (by SIGUSR2) that the pod is going away, then waits listen.drainSeconds, the
time it still takes new connections. Exits 1 if no such process was found.`,
  options: { config: { type: 'string', short: 'c' } },
  async run({ values }) {
    const path = requireString(values, 'config');
    const result = loadConfigFile(path, {});
    if (!result.ok) {
      process.stderr.write(`invalid config ${path}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    const signalled = serveProcesses(realpathSync(process.argv[1] ?? ''), realpathSync(path)).filter((pid) => signal(pid));
    if (signalled.length === 0) {
      process.stderr.write(`no serve process of this command with ${path} was found to drain\n`);
      return 1;
    }
    process.stdout.write(`draining ${signalled.join(', ')}; waiting ${result.config.listen.drainSeconds} s\n`);
    await sleep(result.config.listen.drainSeconds * 1000);
    return 0;
  },
};

/**
 * Processes running `serve` from the same script as this one, with the same config file:
 * found by their command lines rather than as PID 1 (the pause process when the pod shares
 * one process namespace), and by the config so that another sidecar on the same machine
 * (a developer's, a test's) is never drained by mistake.
 */
export function serveProcesses(script: string, config: string, proc = '/proc'): number[] {
  const found: number[] = [];
  for (const entry of readdirSync(proc)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const args = readFileSync(`${proc}/${entry}/cmdline`, 'utf8').split('\0');
      if (args[2] !== 'serve') continue;
      // Relative paths are the process's own: resolved from its working directory.
      const cwd = readlinkSync(`${proc}/${entry}/cwd`);
      const same = (path: string | undefined, want: string) => path !== undefined && realpathSync(resolve(cwd, path)) === want;
      if (same(args[1], script) && same(configArgument(args), config)) found.push(pid);
    } catch {
      continue; // gone meanwhile, not ours to read, or a path that no longer resolves
    }
  }
  return found;
}

/** The value of --config (or -c, or --config=FILE) in a command line. */
function configArgument(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--config' || arg === '-c') return args[i + 1];
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  return undefined;
}

function signal(pid: number): boolean {
  try {
    process.kill(pid, 'SIGUSR2');
    return true;
  } catch {
    return false;
  }
}
