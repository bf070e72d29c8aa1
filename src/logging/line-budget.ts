// What refusals may cost the log. Every refused request wrote a line that echoed its
// target: a peer outside the trusted set sending 15 KB targets wrote 1.5 MB per 100
// requests, enough to rotate the evidence of an attack out of a node's log files and to
// fill the logger's queue (which then drops lines, other peers' among them). So client input
// in a line is clipped, and each peer gets a budget of lines (a token bucket), within one
// for all peers together; a line written after some were held back says how many, and a
// counter keeps the exact total.

/** The most of one client-supplied value a log line holds. */
export const MAX_LOGGED_CHARS = 256;

/** `text` up to MAX_LOGGED_CHARS, and how much more there was. */
export function clip(text: string, max = MAX_LOGGED_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[${text.length - max} more]`;
}

interface Bucket {
  tokens: number;
  at: number;
  /** Lines held back since this peer's last written one. */
  held: number;
}

export interface LineBudgetRates {
  /** Lines a second each peer may write, and the burst it may save up. */
  readonly perPeer: number;
  readonly peerBurst: number;
  /** Lines a second all peers together may write, and their burst. */
  readonly total: number;
  readonly totalBurst: number;
  /** Peers remembered at once; past it the longest unheard-of is forgotten. */
  readonly maxPeers: number;
}

export const REFUSAL_LINES: LineBudgetRates = { perPeer: 5, peerBurst: 20, total: 100, totalBurst: 200, maxPeers: 4096 };

export class LineBudget {
  private readonly peers = new Map<string, Bucket>();
  private readonly all: Bucket;

  constructor(
    private readonly rates: LineBudgetRates,
    nowMs: number,
  ) {
    this.all = { tokens: rates.totalBurst, at: nowMs, held: 0 };
  }

  /**
   * May `peer` write a line now? Returns how many of its lines were held back since its
   * last one (to say in this line), or undefined when this one is held back too.
   */
  take(peer: string, nowMs: number): number | undefined {
    let bucket = this.peers.get(peer);
    if (bucket === undefined) {
      if (this.peers.size >= this.rates.maxPeers) this.peers.delete(this.peers.keys().next().value!);
      bucket = { tokens: this.rates.peerBurst, at: nowMs, held: 0 };
    } else {
      // Most recently heard of last: the first key is the one to forget.
      this.peers.delete(peer);
    }
    this.peers.set(peer, bucket);
    refill(bucket, nowMs, this.rates.perPeer, this.rates.peerBurst);
    refill(this.all, nowMs, this.rates.total, this.rates.totalBurst);
    if (bucket.tokens < 1 || this.all.tokens < 1) {
      bucket.held++;
      return undefined;
    }
    bucket.tokens--;
    this.all.tokens--;
    const held = bucket.held;
    bucket.held = 0;
    return held;
  }
}

function refill(bucket: Bucket, nowMs: number, perSecond: number, burst: number): void {
  bucket.tokens = Math.min(burst, bucket.tokens + ((nowMs - bucket.at) / 1000) * perSecond);
  bucket.at = nowMs;
}
