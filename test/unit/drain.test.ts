// `drain` finds the serve processes of its own script by their command lines: not PID 1,
// which is the pause process when the pod shares one process namespace.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveProcesses } from '../../src/cli/commands/drain.js';

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

test('the serve processes of this script, by absolute or relative path; not pause, other commands or other scripts', () => {
  const script = join(app, 'dist', 'sidecar.js');
  processEntry('1', ['/pause']);
  processEntry('7', ['/nodejs/bin/node', script, 'serve', '--config', '/etc/sidecar.yaml']);
  processEntry('9', ['node', 'dist/sidecar.js', 'serve', '--config', 'c.yaml'], app);
  processEntry('11', ['node', script, 'check-config', '--config', 'c.yaml']);
  processEntry('13', ['node', '/elsewhere/other.js', 'serve']);
  processEntry('15', ['node', 'openclaw.mjs', 'gateway']);
  mkdirSync(join(proc, 'self'));
  expect(serveProcesses(script, proc).sort((a, b) => a - b)).toEqual([7, 9]);
});
