// Child processes of a benchmark run: start, wait for, measure from /proc, and always stop.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const CLOCK_TICKS = 100; // USER_HZ on Linux (getconf CLK_TCK)
const running = new Set<ChildProcess>();
const tempDirs = new Set<string>();
const stopping = new WeakSet<ChildProcess>();

export interface Proc {
  child: ChildProcess;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

/** A child process the run stops when it ends, however it ends (forked ones too). */
export function owned(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

export function start(command: string, args: readonly string[], options: SpawnOptions = {}): Proc {
  const child = owned(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options }));
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.once('exit', (code, signal) => {
    if (!stopping.has(child) && (code !== 0 || signal !== null)) process.stderr.write(`${command} exited (${code ?? signal}):\n${output}\n`);
  });
  if (child.pid === undefined) throw new Error(`cannot start ${command}`);
  return { child, pid: child.pid, output: () => output, stop: () => stopChild(child) };
}

export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  stopping.add(child);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** A temp dir removed when the run ends, however it ends. */
export function tempDir(dir: string): string {
  tempDirs.add(dir);
  return dir;
}

/** Stops everything still running and removes temp dirs (also on failure and signals). */
export async function cleanup(): Promise<void> {
  await Promise.all([...running].map((c) => stopChild(c)));
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** On a signal, with no time to wait: TERM, which each stops on (nginx's master its workers too, which a KILL would orphan). */
export function cleanupSync(): void {
  for (const c of running) c.kill('SIGTERM');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}

export { freePort } from '../harness/ports.js';

/** Polls `check` every `everyMs` until it is true or `timeoutMs` passes. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function httpOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** True once the server answers at all (any status). */
export async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/** User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/**
 * The part of the RSS that is pages of mapped files: for a Node process, mostly the Node
 * executable's own code and read-only data, the same file for every process that runs it.
 */
export function rssFileBytes(pid: number): number {
  return statusBytes(pid, 'RssFile');
}

function statusBytes(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The soft limit on open files this process (and so its children) runs with. */
export function openFileLimit(): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : 1024;
}

/** The pids of a process and its direct children (nginx master and worker). */
export function withChildren(pid: number): number[] {
  const out = [pid];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
