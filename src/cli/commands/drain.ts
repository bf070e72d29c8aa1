import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfigFile } from '../../config/load.js';
import { requireString, type Command } from '../command.js';

export const drain: Command = {
  name: 'drain',
  usage: `trusted-proxy-sidecar drain --config FILE

For a preStop hook: tells the \`serve\` processes of this command in the container (by
SIGUSR2) that the pod is going away, then waits listen.drainSeconds, the time they still
take new connections. Exits 1 if no serve process was found.`,
  options: { config: { type: 'string', short: 'c' } },
  async run({ values }) {
    const path = requireString(values, 'config');
    const result = loadConfigFile(path, {});
    if (!result.ok) {
      process.stderr.write(`invalid config ${path}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      return 2;
    }
    const signalled = serveProcesses(realpathSync(process.argv[1] ?? '')).filter((pid) => signal(pid));
    if (signalled.length === 0) {
      process.stderr.write('no serve process of this command was found to drain\n');
      return 1;
    }
    process.stdout.write(`draining ${signalled.join(', ')}; waiting ${result.config.listen.drainSeconds} s\n`);
    await sleep(result.config.listen.drainSeconds * 1000);
    return 0;
  },
};

/**
 * Processes running `serve` from the same script as this one. Found by their command lines
 * rather than as PID 1, which is the pause process when the pod shares one process namespace.
 */
export function serveProcesses(script: string, proc = '/proc'): number[] {
  const found: number[] = [];
  for (const entry of readdirSync(proc)) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let args: string[];
    try {
      args = readFileSync(`${proc}/${entry}/cmdline`, 'utf8').split('\0');
      if (!args.includes('serve') || args.length < 2) continue;
      // A relative script path is the process's own: resolved from its working directory.
      if (realpathSync(resolve(readlinkSync(`${proc}/${entry}/cwd`), args[1] ?? '')) !== script) continue;
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
    found.push(pid);
  }
  return found;
}

function signal(pid: number): boolean {
  try {
    process.kill(pid, 'SIGUSR2');
    return true;
  } catch {
    return false;
  }
}
