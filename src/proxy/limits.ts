// Fair share of the gateway. Two small units: a count of what each identity holds (upstream
// requests, WebSockets), and the gateway's capacity (upstream.maxSockets requests at once)
// as permits that a request waits for in arrival order, with a deadline; and the admission
// of an allowed request through both. Without them one user's stalled uploads or unread
// downloads could hold the gateway's every slot and leave everyone else waiting with no
// deadline. The listeners count connections with the first (server/connection-quota.ts).
import type { ServerResponse } from 'node:http';
import type { Config } from '../config/schema.js';
import type { LimitReason } from '../vocabulary/refusals.js';

/** How many things each key (an identity, a peer address) holds at once, up to a limit. */
export class PerKeyLimit {
  private readonly held = new Map<string, number>();

  constructor(private limit: number) {}

  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** Takes one for `key`; false when it already holds the limit (nothing is taken then). */
  tryAcquire(key: string): boolean {
    const n = this.held.get(key) ?? 0;
    if (n >= this.limit) return false;
    this.held.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = this.held.get(key);
    if (n === undefined) return;
    if (n <= 1) this.held.delete(key);
    else this.held.set(key, n - 1);
  }

  /** What `key` holds now. */
  count(key: string): number {
    return this.held.get(key) ?? 0;
  }
}

interface Waiter {
  readonly granted: () => void;
  readonly timedOut: () => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Requests at the gateway at once, as permits. A request holds one from dispatch to the end
 * of its exchange; when none is free it waits, first come first served, for at most the
 * queue timeout, so no request waits without a deadline.
 */
export class UpstreamSlots {
  private inUse = 0;
  // A Set keeps arrival order and removes a cancelled waiter in O(1).
  private readonly waiting = new Set<Waiter>();

  constructor(
    private capacity: number,
    private timeoutMs: number,
  ) {}

  get busy(): number {
    return this.inUse;
  }

  get queued(): number {
    return this.waiting.size;
  }

  /**
   * Calls `granted` once a permit is held (at once when one is free) or `timedOut` when the
   * wait reaches the deadline. The returned function withdraws a request still waiting;
   * once granted, the holder gives the permit back with release().
   */
  acquire(granted: () => void, timedOut: () => void): () => void {
    if (this.inUse < this.capacity && this.waiting.size === 0) {
      this.inUse++;
      granted();
      return noop;
    }
    const waiter: Waiter = {
      granted,
      timedOut,
      timer: setTimeout(() => {
        if (this.waiting.delete(waiter)) timedOut();
      }, this.timeoutMs),
    };
    this.waiting.add(waiter);
    return () => {
      if (this.waiting.delete(waiter)) clearTimeout(waiter.timer);
    };
  }

  release(): void {
    this.inUse--;
    this.grantWaiting();
  }

  /** A reload's new capacity and queue timeout; waits already running keep their deadline. */
  update(capacity: number, timeoutMs: number): void {
    this.capacity = capacity;
    this.timeoutMs = timeoutMs;
    this.grantWaiting();
  }

  private grantWaiting(): void {
    for (const waiter of this.waiting) {
      if (this.inUse >= this.capacity) return;
      this.waiting.delete(waiter);
      clearTimeout(waiter.timer);
      this.inUse++;
      waiter.granted();
    }
  }
}

function noop(): void {}

/** The most upstream requests one identity may have in flight or waiting: a share of the capacity, at least one. */
export function identityRequestLimit(maxSockets: number, share: number): number {
  return Math.max(1, Math.floor(maxSockets * share));
}

/**
 * The way in for an allowed inline request: a body declared over the maximum is refused at
 * once; then the request takes its identity's share and one of the gateway's slots
 * (waiting, with a deadline, when all are busy). Both are given back when the response is
 * done or abandoned.
 */
export class Admission {
  /** Upstream requests each identity has in flight or waiting. */
  private readonly requests: PerKeyLimit;
  readonly slots: UpstreamSlots;

  constructor({ upstream, limits }: Config) {
    this.requests = new PerKeyLimit(identityRequestLimit(upstream.maxSockets, limits.identityPoolShare));
    this.slots = new UpstreamSlots(upstream.maxSockets, limits.queueTimeoutSeconds * 1000);
  }

  /** A reloaded config's limits; requests already admitted keep theirs. */
  applyConfig({ upstream, limits }: Config): void {
    this.requests.setLimit(identityRequestLimit(upstream.maxSockets, limits.identityPoolShare));
    this.slots.update(upstream.maxSockets, limits.queueTimeoutSeconds * 1000);
  }

  /** `admitted` runs once the request holds a slot; `refused` with the limit that turned it away. */
  admit(
    res: ServerResponse,
    user: string,
    declaredBodyBytes: number | undefined,
    limits: Config['limits'],
    admitted: () => void,
    refused: (reason: LimitReason) => void,
  ): void {
    if (limits.maxRequestBodyBytes > 0 && declaredBodyBytes !== undefined && declaredBodyBytes > limits.maxRequestBodyBytes) {
      refused('body_too_large');
      return;
    }
    if (!this.requests.tryAcquire(user)) {
      refused('identity_request_limit');
      return;
    }
    let holding = false;
    const withdraw = this.slots.acquire(
      () => {
        holding = true;
        admitted();
      },
      () => refused('upstream_busy'),
    );
    res.on('close', () => {
      withdraw();
      this.requests.release(user);
      if (holding) this.slots.release();
    });
  }
}

/**
 * Requests per minute per key (a machine route and a source address), as token buckets that
 * refill continuously. At most `maxKeys` are remembered; past that the oldest is forgotten,
 * so a flood of new addresses costs memory only up to the bound (a forgotten key starts
 * with a full bucket again).
 */
export class RateLimit {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly maxKeys = 10_000) {}

  /** Takes one request for `key` at `nowMs`; false when its bucket is empty (nothing is taken then). */
  take(key: string, perMinute: number, nowMs: number): boolean {
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = { tokens: perMinute, at: nowMs };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(perMinute, bucket.tokens + ((nowMs - bucket.at) * perMinute) / 60_000);
      bucket.at = nowMs;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}
