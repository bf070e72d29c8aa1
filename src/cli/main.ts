#!/usr/bin/env node
// The `trusted-proxy-sidecar` command: one subcommand per file in ./commands.
import { checkConfig } from './commands/check-config.js';
import { doctor } from './commands/doctor.js';
import { gatewayConfig } from './commands/gateway-config.js';
import { keygen } from './commands/keygen.js';
import { serve } from './commands/serve.js';
import { verify } from './commands/verify.js';
import { parse, UsageError, type Command } from './command.js';

const COMMANDS: readonly Command[] = [serve, checkConfig, verify, keygen, doctor, gatewayConfig];

function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `usage: trusted-proxy-sidecar <command> [options]

${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "trusted-proxy-sidecar <command> --help" for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topUsage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`unknown command: ${name}\n\n${topUsage()}`);
    return 2;
  }
  try {
    const args = parse(command, rest);
    if (args.values.help) {
      process.stdout.write(`${command.usage}\n`);
      return 0;
    }
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${command.name}: ${err.message}\n\n${command.usage}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
