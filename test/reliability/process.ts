// The sidecar as a real process (`node dist/sidecar.js serve`), so its file descriptors,
// memory and signals are its own to count, plus bounded load loops and counters.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../src/config/schema.js';
import { sample, scrape } from '../support/metrics.js';
import { TEST_KEY, withLoopback } from '../support/sidecar.js';
import { waitFor } from '../../harness/wait.js';
import { COMMAND as MAIN } from '../support/command.js';

export interface SidecarProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  adminUrl: string;
  port: number;
  dir: string;
  keysDir: string;
  configPath: string;
  /** The last (up to 2,000) log lines, parsed. */
  logs(): Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  writeConfig(config: ConfigInput | string): void;
  stop(): Promise<void>;
}

export interface ServeOptions {
  /**
   * Honour file modes: root without the two capabilities that bypass them, so a folder made
   * unreadable is unreadable to the sidecar. (Running as another user instead would also
   * need every folder above the checkout to be traversable, which a CI clone in a private
   * mktemp folder is not.)
   */
  honourFileModes?: boolean;
  /** Node flags for the sidecar process, e.g. a heap bound as a container limit would set. */
  nodeFlags?: string[];
  /** Environment variables added to the sidecar's, e.g. NODE_EXTRA_CA_CERTS. */
  env?: Record<string, string>;
  /** Run the sidecar in a memory cgroup of its own with this limit, as a container's. */
  memoryLimitBytes?: number;
}

export async function serveProcess(input: ConfigInput, options: ServeOptions = {}): Promise<SidecarProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "make build"`);
  const dir = mkdtempSync(join(tmpdir(), 'tps-rel-'));
  const keysDir = join(dir, 'keys');
  mkdirSync(keysDir);
  writeFileSync(join(keysDir, 'k1'), TEST_KEY);
  const configPath = join(dir, 'sidecar.yaml');
  const full: ConfigInput = {
    ...input,
    listen: { host: '127.0.0.1', port: 0, ...input.listen },
    admin: { host: '127.0.0.1', port: 0, ...input.admin },
    trust: withLoopback(input.trust),
    assertion: { keysDir, ...input.assertion },
  };
  const writeConfig = (next: ConfigInput | string) => {
    const staged = join(dir, '.staged.yaml');
    writeFileSync(staged, typeof next === 'string' ? next : stringify(next));
    // rename: a watcher never reads half a file (as with a ConfigMap's symlink swap).
    renameSync(staged, configPath);
  };
  writeConfig(full);
  const group = options.memoryLimitBytes === undefined ? undefined : memoryGroup(options.memoryLimitBytes);
  const node = [process.execPath, ...(options.nodeFlags ?? []), MAIN, 'serve', '--config', configPath];
  // The shell moves itself into the group, then execs the sidecar there.
  const command = group ? ['sh', '-c', 'echo $$ > "$0" && exec "$@"', group.procs, ...node] : node;
  // setpriv execs the sidecar in place, so the child's pid is the sidecar's (for /proc).
  const [file, ...args] = options.honourFileModes ? ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--', ...command] : command;
  const child = spawn(file!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  // The last lines only, parsed when asked: a soak logs every refusal, and a reader that
  // falls behind would make the sidecar buffer its log output and skew its memory.
  const recent: string[] = [];
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line) recent.push(line);
    if (recent.length > 2000) recent.splice(0, recent.length - 1000);
  });
  const logs = () => recent.map((line) => JSON.parse(line) as Record<string, unknown>);
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-10_000)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
    group?.remove();
  };
  try {
    const listening = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${stderr}`);
        return logs().find((l) => l['msg'] === 'listening') as { data: { port: number }; admin: { port: number } } | undefined;
      },
      'the sidecar to listen',
      15_000,
    );
    return {
      child,
      pid: child.pid!,
      url: `http://127.0.0.1:${listening.data.port}`,
      adminUrl: `http://127.0.0.1:${listening.admin.port}`,
      port: listening.data.port,
      dir,
      keysDir,
      configPath,
      logs,
      exited,
      writeConfig,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Open file descriptors of a process (sockets included). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Waits (bounded) until the process holds at most `max` descriptors; returns the last count. */
export async function fdsSettle(pid: number, max: number, timeoutMs = 15_000): Promise<number> {
  let last = fdCount(pid);
  await waitFor(() => (last = fdCount(pid)) <= max, `fds of ${pid} to fall to ${max}`, timeoutMs, 100).catch(() => undefined);
  return last;
}

export async function metric(adminUrl: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  return sample(await scrape(adminUrl), name, labels);
}

// One connection per request: the client holds no pooled sockets, so the sidecar's fd
// count after a run shows what the sidecar itself still holds.
const noPool = new http.Agent({ keepAlive: false });

export interface Answer {
  status: number;
  body: string;
  ms: number;
  /** The response started but did not end cleanly. */
  cut: boolean;
}

export function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolveAnswer) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: noPool }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveAnswer({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: performance.now() - started, cut: false }));
      res.on('error', () => resolveAnswer({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: performance.now() - started, cut: true }));
    });
    req.setTimeout(opts.timeoutMs ?? 10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolveAnswer({ status: 0, body: err.code ?? err.message, ms: performance.now() - started, cut: true }));
    req.end(opts.body);
  });
}

/** Runs `count` calls of `fn` with `concurrency` workers; bounded by count. */
export async function load<T>(count: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/** Counts of each key. */
export function tally(keys: Iterable<string | number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) out[String(k)] = (out[String(k)] ?? 0) + 1;
  return out;
}

/**
 * A memory cgroup of its own (v2, or v1's memory controller) with `bytes` as its limit;
 * remove() once the process in it has exited.
 */
function memoryGroup(bytes: number): { procs: string; remove(): void } {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const path = join(v2 ? '/sys/fs/cgroup' : '/sys/fs/cgroup/memory', `tps-test-${process.pid}-${Date.now()}`);
  mkdirSync(path);
  const remove = () => rmdirSync(path);
  try {
    writeFileSync(join(path, v2 ? 'memory.max' : 'memory.limit_in_bytes'), String(bytes));
  } catch (err) {
    remove();
    throw err;
  }
  return { procs: join(path, 'cgroup.procs'), remove };
}
