// How big a run is. `make test` runs the CI profile (minutes); `make soak` sets
// RELIABILITY_PROFILE=soak and the same code runs longer and wider. Each size can be
// overridden on its own (e.g. SOAK_SECONDS=1800 make soak).
export type ProfileName = 'ci' | 'soak';

export interface Profile {
  readonly name: ProfileName;
  /** The command that produces a report of this profile. */
  readonly command: string;
  /** fast-check runs of the in-process decision and sanitising property. */
  readonly fuzzRuns: number;
  /** Random-header requests sent through a raw socket to a live sidecar. */
  readonly rawFuzzRequests: number;
  /** Generated connections (one to three pipelined requests) sent through both data planes. */
  readonly differentialRuns: number;
  /** Length of the mixed-traffic soak. */
  readonly soakSeconds: number;
  /** Slow (slowloris) and idle sockets held open at once in the flood test. */
  readonly floodSockets: number;
  /** Requests each fault-under-load scenario sends. */
  readonly faultLoadRequests: number;
  /** Connections one allowed identity opens in each exhaustion scenario (the pool is 256). */
  readonly exhaustionConnections: number;
  /** Refused connections that never read nor close, in each unauthenticated exhaustion scenario. */
  readonly refusedConnections: number;
}

function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, not ${raw}`);
  return n;
}

export function profile(): Profile {
  const name = process.env['RELIABILITY_PROFILE'] === 'soak' ? 'soak' : 'ci';
  const soak = name === 'soak';
  return {
    name,
    command: soak ? 'make soak' : 'make test',
    fuzzRuns: int('FUZZ_RUNS', soak ? 1_000_000 : 100_000),
    rawFuzzRequests: int('RAW_FUZZ_REQUESTS', soak ? 20_000 : 1_500),
    differentialRuns: int('DIFFERENTIAL_RUNS', soak ? 5_000 : 400),
    soakSeconds: int('SOAK_SECONDS', soak ? 600 : 60),
    floodSockets: int('FLOOD_SOCKETS', soak ? 8_000 : 3_000),
    faultLoadRequests: int('FAULT_LOAD_REQUESTS', soak ? 2_000 : 240),
    exhaustionConnections: int('EXHAUSTION_CONNECTIONS', soak ? 1_000 : 300),
    refusedConnections: int('REFUSED_CONNECTIONS', soak ? 5_000 : 1_000),
  };
}
