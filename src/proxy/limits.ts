// Fair share of the gateway. Two small units: a count of what each identity holds (upstream
// requests, WebSockets), and the gateway's capacity (upstream.maxSockets requests at once)
// as permits that a request waits for in arrival order, with a deadline. Without them one
// user's stalled uploads or unread downloads could hold the gateway's every slot and leave
// everyone else waiting with no deadline. The listeners count connections with the first
// (server/connection-quota.ts).

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
