// The fair-share units on their own: per-identity counts, and the pool's permits with an
// ordered, deadline-bound wait. Time is jest's fake clock, never a sleep.
import { jest } from '@jest/globals';
import { identityRequestLimit, PerKeyLimit, RateLimit, UpstreamSlots } from '../../../src/proxy/limits.js';

describe('PerKeyLimit', () => {
  test('each identity holds up to the limit; a release makes room; identities do not share', () => {
    const limit = new PerKeyLimit(2);
    expect([limit.tryAcquire('alice'), limit.tryAcquire('alice'), limit.tryAcquire('alice')]).toEqual([true, true, false]);
    expect(limit.tryAcquire('bob')).toBe(true);
    limit.release('alice');
    expect(limit.count('alice')).toBe(1);
    expect(limit.tryAcquire('alice')).toBe(true);
  });

  test('a release of what was never held changes nothing; a lowered limit applies to new acquisitions', () => {
    const limit = new PerKeyLimit(3);
    limit.release('nobody');
    expect(limit.count('nobody')).toBe(0);
    limit.tryAcquire('a');
    limit.tryAcquire('a');
    limit.setLimit(1);
    expect(limit.tryAcquire('a')).toBe(false);
    limit.release('a');
    limit.release('a');
    expect(limit.tryAcquire('a')).toBe(true);
  });

  test('the request limit is a share of the pool, at least one', () => {
    expect(identityRequestLimit(256, 0.25)).toBe(64);
    expect(identityRequestLimit(3, 0.25)).toBe(1);
    expect(identityRequestLimit(10, 1)).toBe(10);
  });
});

describe('UpstreamSlots', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  test('free permits are granted at once; then requests wait and are granted in arrival order', () => {
    const slots = new UpstreamSlots(2, 1000);
    const log: string[] = [];
    for (const name of ['a', 'b', 'c', 'd'])
      slots.acquire(
        () => log.push(`granted ${name}`),
        () => log.push(`timed out ${name}`),
      );
    expect(log).toEqual(['granted a', 'granted b']);
    expect([slots.busy, slots.queued]).toEqual([2, 2]);
    slots.release();
    expect(log).toEqual(['granted a', 'granted b', 'granted c']);
    slots.release();
    expect(log.at(-1)).toBe('granted d');
    expect([slots.busy, slots.queued]).toEqual([2, 0]);
  });

  test('a wait ends at the deadline: timed out, not granted later', () => {
    const slots = new UpstreamSlots(1, 500);
    const log: string[] = [];
    slots.acquire(
      () => log.push('a'),
      () => log.push('a timed out'),
    );
    slots.acquire(
      () => log.push('b'),
      () => log.push('b timed out'),
    );
    jest.advanceTimersByTime(499);
    expect(log).toEqual(['a']);
    jest.advanceTimersByTime(1);
    expect(log).toEqual(['a', 'b timed out']);
    slots.release();
    expect(log).toEqual(['a', 'b timed out']);
    expect([slots.busy, slots.queued]).toEqual([0, 0]);
  });

  test('a withdrawn wait is neither granted nor timed out, and keeps no permit', () => {
    const slots = new UpstreamSlots(1, 500);
    const log: string[] = [];
    slots.acquire(
      () => log.push('a'),
      () => log.push('a timed out'),
    );
    const withdraw = slots.acquire(
      () => log.push('b'),
      () => log.push('b timed out'),
    );
    withdraw();
    slots.release();
    jest.advanceTimersByTime(1000);
    expect(log).toEqual(['a']);
    expect([slots.busy, slots.queued]).toEqual([0, 0]);
  });

  test('a grown pool grants waiting requests at once; a shrunk one waits for releases', () => {
    const slots = new UpstreamSlots(1, 10_000);
    const log: string[] = [];
    for (const name of ['a', 'b', 'c'])
      slots.acquire(
        () => log.push(name),
        () => log.push(`${name} timed out`),
      );
    slots.update(3, 10_000);
    expect(log).toEqual(['a', 'b', 'c']);
    slots.update(1, 10_000);
    slots.acquire(
      () => log.push('d'),
      () => log.push('d timed out'),
    );
    slots.release();
    slots.release();
    expect(log).toEqual(['a', 'b', 'c']);
    slots.release();
    expect(log).toEqual(['a', 'b', 'c', 'd']);
  });

  test('a request that arrives while others wait queues behind them, even with a permit just freed', () => {
    const slots = new UpstreamSlots(1, 10_000);
    const log: string[] = [];
    slots.acquire(
      () => log.push('a'),
      () => undefined,
    );
    slots.acquire(
      () => log.push('b'),
      () => undefined,
    );
    slots.release();
    slots.acquire(
      () => log.push('c'),
      () => undefined,
    );
    expect(log).toEqual(['a', 'b']);
  });
});

describe('RateLimit', () => {
  test('a bucket per key: the rate per minute at once, then refilled with time', () => {
    const rate = new RateLimit();
    const t0 = 1_000_000;
    expect([1, 2, 3, 4].map(() => rate.take('a', 3, t0))).toEqual([true, true, true, false]);
    expect(rate.take('b', 3, t0)).toBe(true);
    // 20 s is one request's worth at 3 per minute.
    expect(rate.take('a', 3, t0 + 19_000)).toBe(false);
    expect(rate.take('a', 3, t0 + 39_500)).toBe(true);
    expect(rate.take('a', 3, t0 + 39_600)).toBe(false);
  });
  test('memory is bounded: past maxKeys the oldest key is forgotten', () => {
    const rate = new RateLimit(100);
    for (let i = 0; i < 1000; i++) rate.take(`k${i}`, 1, 0);
    expect(rate.size).toBe(100);
    expect(rate.take('k999', 1, 0)).toBe(false);
  });
});
