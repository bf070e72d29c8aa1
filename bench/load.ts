// Load generators: wrk for throughput at saturation (keep-alive, closed loop), and an
// open-loop generator for latency at a fixed rate below saturation.
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const LUA = new URL('../../../bench/wrk/identity.lua', import.meta.url).pathname;

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  errors: number;
  non2xx: number;
  /** Latency percentiles in milliseconds, keyed by percentile ("50", "99.9", ...). */
  percentiles: Record<string, number>;
}

export async function wrk(url: string, seconds: number, connections: number): Promise<WrkResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', LUA, url];
  const { stdout } = await run('wrk', args, { timeout: (seconds + 30) * 1000 });
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const raw = JSON.parse(line.slice('WRK_JSON '.length)) as {
    requests: number;
    duration_us: number;
    errors: number;
    non2xx: number;
    percentiles_us: Record<string, number>;
  };
  const secondsRun = raw.duration_us / 1e6;
  const percentiles: Record<string, number> = {};
  for (const [p, us] of Object.entries(raw.percentiles_us)) percentiles[p] = us / 1000;
  return { requests: raw.requests, seconds: secondsRun, rps: raw.requests / secondsRun, errors: raw.errors, non2xx: raw.non2xx, percentiles };
}

/** The request target wrk sends (bench/wrk/identity.lua). */
export const WRK_PATH = '/api/v1/sessions?limit=20';

/** The identity headers wrk sends, for the Node-side generators. */
export const IDENTITY_HEADERS: Record<string, string> = {
  host: 'gateway.example.com',
  'x-auth-request-user': 'alice',
  'x-auth-request-email': 'alice@example.com',
  'x-auth-request-groups': 'staff,admins',
  'x-forwarded-for': '203.0.113.7',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'gateway.example.com',
  accept: 'application/json, text/plain, */*',
};

export interface FixedRateResult {
  rate: number;
  sent: number;
  completed: number;
  failed: number;
  /** Sorted latencies in milliseconds. */
  latencies: Float64Array;
}

/**
 * Sends requests on a fixed schedule whether or not earlier ones have answered (open
 * loop), over a pool of keep-alive connections. A request waiting for a free connection
 * counts that wait, so a stall shows in the percentiles instead of slowing the sender.
 */
export async function fixedRate(url: string, rate: number, seconds: number, connections = 32): Promise<FixedRateResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const total = Math.round(rate * seconds);
  const latencies = new Float64Array(total);
  let sent = 0;
  let completed = 0;
  let failed = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const finish = () => {
      if (completed + failed === total) resolve();
    };
    const send = () => {
      sent++;
      const t0 = performance.now();
      const req = http.get(url + WRK_PATH, { agent, headers: IDENTITY_HEADERS }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) latencies[completed++] = performance.now() - t0;
          else failed++;
          finish();
        });
      });
      req.on('error', () => {
        failed++;
        finish();
      });
    };
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      while (sent < due) send();
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
    // Bounded: whatever has not answered 10 s after the schedule ends counts as failed.
    setTimeout(() => {
      failed = total - completed;
      resolve();
    }, (seconds + 10) * 1000).unref();
  });
  agent.destroy();
  const done = latencies.slice(0, completed).sort();
  return { rate, sent, completed, failed, latencies: done };
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
