// What a benchmark run measured, as run.ts writes it to bench-results.json and the report reads it.
import type { ColdStart, ImportCost } from './coldstart.js';
import type { WrkResult } from './load.js';
import type { EchoResult } from './ws.js';
import type { KubeScaleResult } from './kube-scale.js';
import { type CpuProfileResult } from './cpu-profile.js';
import type { AllocationProfile } from './heap-profile.js';

export interface HttpResult {
  id: string;
  title: string;
  /** At saturation, the round with the median rate: the percentiles reported. */
  wrk: WrkResult;
  /** At saturation, one wrk result per round. */
  saturation: WrkResult[];
  /** Over all saturation rounds. */
  cpuPer10k: number | undefined;
  rssBytes: number | undefined;
  /**
   * Latency at a fixed rate: one wrk result per round, and the proxying processes' CPU
   * seconds over all rounds (undefined for direct).
   */
  fixed?: { rate: number; rounds: WrkResult[]; cpuSeconds: number | undefined };
}

export interface IdleCost {
  count: number;
  before: IdleState;
  after: IdleState;
}

interface IdleState {
  rss: number;
  fds: number;
  heap: number;
  /** The sidecar's CPU µs per /metrics scrape (absent for the bare relays, and in reports before it was measured). */
  scrapeUs?: number;
}

/** One round of the micro-benchmarks, per second on one thread; lookups by probe mix. */
export interface MicroRound {
  decisions: number;
  /** HS256 signs. */
  signs: number;
  /** EdDSA and ES256 signs (absent in reports before they were measured). */
  signsByAlgorithm?: Record<string, number>;
  /** The limits' bookkeeping for one inline request (absent in reports before it was measured). */
  limits?: number;
  lookups: Record<string, number>;
}

export interface Results {
  startedAt: string;
  quick: boolean;
  connections: number;
  /** Length and number of the saturation rounds. */
  seconds: number;
  rounds: number;
  loadBefore: number[];
  loadAfter?: number[];
  /** How long the measurements took. */
  minutes?: number;
  http: HttpResult[];
  alternatives: HttpResult[];
  websockets?: {
    idle: IdleCost & { wanted: number; fileLimit: number };
    /** The same idle load through the bare forwarders: what a Node relay costs at least. */
    floors: Record<string, IdleCost>;
    /** Every round's result per relay; the relays are measured one after the other in each round. */
    echo: { direct: EchoResult[]; sidecar: EchoResult[]; others: Record<string, EchoResult[]>; connections: number; messageBytes: number };
  };
  micro?: { rounds: MicroRound[] };
  coldStart?: ColdStart;
  /** The same command as tsc's module tree, before bundling. */
  coldStartUnbundled?: ColdStart;
  imports?: ImportCost[];
  /** Idle RSS of Node with the sidecar's built-ins and dependencies, none of its code (idle-floor.ts), and its file-backed part. */
  idleFloor?: { rssBytes: number[]; fileBytes: number[] };
  kubernetes?: KubeScaleResult;
  /**
   * The bare forwarder and the sidecar once more, each alone on a core (run.ts's `pinApart`),
   * in alternating rounds: each round's CPU per request of both (absent on a single CPU).
   */
  pinned?: { seconds: number; pairs: { bareUs: number; sidecarUs: number }[] };
  /** Where the inline path's CPU goes (V8's sampling profiler at saturation). */
  profile?: CpuProfileResult;
  /** Where the inline path's allocations go (V8's sampling heap profiler at saturation). */
  allocations?: AllocationProfile;
}
