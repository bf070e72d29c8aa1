// `drain` finds the serve process of its own script and config by its command line: not
// PID 1, which is the pause process when the pod shares one process namespace, and never
// another sidecar that runs on the same machine.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveProcesses } from '../../../src/cli/commands/drain.js';

let proc: string;
let app: string;
beforeEach(() => {
  proc = mkdtempSync(join(tmpdir(), 'tps-proc-'));
  app = mkdtempSync(join(tmpdir(), 'tps-app-'));
  mkdirSync(join(app, 'dist'));
  writeFileSync(join(app, 'dist', 'sidecar.js'), '');
});
afterEach(() => {
  rmSync(proc, { recursive: true, force: true });
  rmSync(app, { recursive: true, force: true });
});

function processEntry(pid: string, args: string[], cwd = '/'): void {
  mkdirSync(join(proc, pid));
  writeFileSync(join(proc, pid, 'cmdline'), `${args.join('\0')}\0`);
  symlinkSync(cwd, join(proc, pid, 'cwd'));
}

test('the serve process of this script and this config, by absolute or relative paths; not pause, other commands, scripts or configs', () => {
  const script = join(app, 'dist', 'sidecar.js');
  const config = join(app, 'sidecar.yaml');
  writeFileSync(config, '');
  writeFileSync(join(app, 'other.yaml'), '');
  processEntry('1', ['/pause']);
  processEntry('7', ['/nodejs/bin/node', script, 'serve', '--config', config]);
  processEntry('9', ['node', 'dist/sidecar.js', 'serve', '-c', 'sidecar.yaml'], app);
  processEntry('10', ['node', script, 'serve', `--config=${config}`]);
  // Another sidecar on the same machine, with a config of its own: a test's, a developer's.
  processEntry('11', ['node', script, 'serve', '--config', join(app, 'other.yaml')]);
  processEntry('12', ['node', script, 'check-config', '--config', config]);
  processEntry('13', ['node', '/elsewhere/other.js', 'serve', '--config', config]);
  processEntry('14', ['node', script, 'serve']);
  processEntry('15', ['node', 'openclaw.mjs', 'gateway']);
  mkdirSync(join(proc, 'self'));
  expect(serveProcesses(script, config, proc).sort((a, b) => a - b)).toEqual([7, 9, 10]);
});
