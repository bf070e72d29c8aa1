// Load generators, both wrk: flat out for throughput at saturation, and with random waits
// between requests for latency at a fixed rate below saturation.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const LUA = new URL('../../../bench/wrk/identity.lua', import.meta.url).pathname;

/** A header line that proves who the client is to a path that checks (a session cookie, a bearer token). */
export interface Credential {
  header: string;
  value: string;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  /** Socket errors by kind (wrk's own counts), to tell a refused connection from a stall. */
  errors: WrkErrors;
  non2xx: number;
  /** Latency percentiles in milliseconds, keyed by percentile ("50", "99.9", ...). */
  percentiles: Record<string, number>;
  /** Latency in milliseconds at every half percentile (0.5, 1, ... 100), for the chart. */
  distribution: number[];
}

/** wrk's socket errors: connect, read and write failures, and answers later than 5 s. */
export interface WrkErrors {
  connect: number;
  read: number;
  write: number;
  timeout: number;
}

/**
 * wrk with `connections` keep-alive connections for `seconds`. With `meanDelayMs` every
 * connection waits a random time of that mean before each request (bench/wrk/identity.lua),
 * which sets the rate; without it, wrk sends as fast as the path answers. `credential` is
 * a header every request carries (a path that checks a real session or token).
 */
export async function wrk(url: string, seconds: number, connections: number, meanDelayMs?: number, credential?: Credential): Promise<WrkResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', LUA, url, '--', meanDelayMs === undefined ? '-' : String(meanDelayMs)];
  if (credential !== undefined) args.push(credential.header, credential.value);
  const { stdout } = await run('wrk', args, { timeout: (seconds + 30) * 1000 });
  const line = stdout.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const raw = JSON.parse(line.slice('WRK_JSON '.length)) as {
    requests: number;
    duration_us: number;
    errors: WrkErrors;
    non2xx: number;
    percentiles_us: Record<string, number>;
    distribution_us: number[];
  };
  const secondsRun = raw.duration_us / 1e6;
  const percentiles: Record<string, number> = {};
  for (const [p, us] of Object.entries(raw.percentiles_us)) percentiles[p] = us / 1000;
  return {
    requests: raw.requests,
    seconds: secondsRun,
    rps: raw.requests / secondsRun,
    errors: raw.errors,
    non2xx: raw.non2xx,
    percentiles,
    distribution: raw.distribution_us.map((us) => us / 1000),
  };
}

/** Connections for the fixed-rate load: enough that each waits far longer than any answer takes. */
export const RATE_CONNECTIONS = 100;

/**
 * Requests at a fixed mean rate below saturation, in Poisson arrivals: RATE_CONNECTIONS
 * connections, each waiting a random time (mean RATE_CONNECTIONS / rate seconds, 50 ms at
 * 2,000/s) before each request. A path that stalls still gets the requests that fall due
 * meanwhile on every other connection, so the stall shows in the percentiles; only the
 * next request of a connection already waiting on the stall is held back.
 */
export function fixedRate(url: string, rate: number, seconds: number, credential?: Credential): Promise<WrkResult> {
  return wrk(url, seconds, RATE_CONNECTIONS, (RATE_CONNECTIONS * 1000) / rate, credential);
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
