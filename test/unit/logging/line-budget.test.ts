// The refusal log's budget: a burst, then a rate, per peer and for all peers together, with
// the held-back count said in the next written line; and client input clipped.
import { clip, LineBudget, MAX_LOGGED_CHARS } from '../../../src/logging/line-budget.js';

const rates = { perPeer: 5, peerBurst: 10, total: 100, totalBurst: 30, maxPeers: 3 };

test('a peer writes its burst, then is held back, then writes at its rate saying how many were held', () => {
  const budget = new LineBudget(rates, 0);
  for (let i = 0; i < 10; i++) expect(budget.take('a', 0)).toBe(0);
  for (let i = 0; i < 7; i++) expect(budget.take('a', 0)).toBeUndefined();
  // 200 ms later: one line's worth at 5 a second.
  expect(budget.take('a', 200)).toBe(7);
  expect(budget.take('a', 200)).toBeUndefined();
  // Another peer is not held back by this one.
  expect(budget.take('b', 200)).toBe(0);
});

test('all peers together stay within the total, however many addresses they come from', () => {
  const budget = new LineBudget({ ...rates, maxPeers: 1000 }, 0);
  let written = 0;
  for (let peer = 0; peer < 100; peer++) for (let i = 0; i < 3; i++) if (budget.take(`p${peer}`, 0) !== undefined) written++;
  expect(written).toBe(30);
});

test('the peers remembered are bounded: the one longest unheard of is forgotten', () => {
  const budget = new LineBudget(rates, 0);
  for (let i = 0; i < 10; i++) budget.take('a', 0);
  expect(budget.take('a', 0)).toBeUndefined();
  for (const p of ['b', 'c', 'd']) budget.take(p, 0);
  // 'a' was forgotten to remember 'd': it starts again with a full burst.
  expect(budget.take('a', 0)).toBe(0);
});

test('client input is clipped with how much more there was', () => {
  expect(clip('/short')).toBe('/short');
  const long = `/${'x'.repeat(15_000)}`;
  expect(clip(long)).toBe(`${long.slice(0, MAX_LOGGED_CHARS)}…[${long.length - MAX_LOGGED_CHARS} more]`);
});
