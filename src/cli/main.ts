#!/usr/bin/env node
// The `trusted-proxy-sidecar` command: one subcommand per file in ./commands.
import { VERSION } from '../version.js';
import { parse, UsageError, type Command } from './command.js';

// Each command loads on first use: `keygen` or `--help` need not pay for the proxy's imports.
const COMMANDS: readonly { name: string; summary: string; load: () => Promise<Command> }[] = [
  { name: 'serve', summary: 'run the sidecar', load: async () => (await import('./commands/serve.js')).serve },
  { name: 'drain', summary: 'tell the running sidecar its pod is going away (preStop hook)', load: async () => (await import('./commands/drain.js')).drain },
  { name: 'check-config', summary: 'validate a config file without starting', load: async () => (await import('./commands/check-config.js')).checkConfig },
  { name: 'verify', summary: 'verify an assertion and print its claims (debugging)', load: async () => (await import('./commands/verify.js')).verify },
  { name: 'keygen', summary: 'write a new signing key (HS256, EdDSA or ES256)', load: async () => (await import('./commands/keygen.js')).keygen },
  { name: 'doctor', summary: 'check an OpenClaw gateway config against the sidecar config', load: async () => (await import('./commands/doctor.js')).doctor },
  {
    name: 'gateway-config',
    summary: "merge the sidecar's trust settings into an OpenClaw gateway config",
    load: async () => (await import('./commands/gateway-config.js')).gatewayConfig,
  },
];

function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `usage: trusted-proxy-sidecar <command> [options]

${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run "trusted-proxy-sidecar <command> --help" for a command's options, and
"trusted-proxy-sidecar --version" for the version.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topUsage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`unknown command: ${name}\n\n${topUsage()}`);
    return 2;
  }
  const command = await entry.load();
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
