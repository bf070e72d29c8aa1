// The data port's default connection maximum: the smaller of what the descriptor limit and
// the memory limit leave room for (test/reliability/memory-limit.test.ts runs it in a real
// memory cgroup).
import { connectionsWithinDescriptorLimit, connectionsWithinMemoryLimit } from '../../../src/server/data-plane.js';

const MIB = 1024 * 1024;

test('descriptors: two per connection, 256 kept back; no limit, no maximum', () => {
  expect(connectionsWithinDescriptorLimit('Max open files            20000                20000                files\n')).toBe(9872);
  expect(connectionsWithinDescriptorLimit('Max open files            unlimited            unlimited            files\n')).toBe(Infinity);
  expect(connectionsWithinDescriptorLimit('Max open files            200                  200                  files\n')).toBe(1);
});

test('memory: the limit less 192 MiB, at least a quarter of it, over 24 KiB and a whole request head per connection', () => {
  // The chart's 512 MiB: 320 MiB at 40 KiB.
  expect(connectionsWithinMemoryLimit(16384, 512 * MIB)).toBe(8192);
  // Bigger heads allowed, fewer connections.
  expect(connectionsWithinMemoryLimit(1024 * 1024 - 24 * 1024, 512 * MIB)).toBe(320);
  // Small limits: a quarter.
  expect(connectionsWithinMemoryLimit(16384, 256 * MIB)).toBe(1638);
  expect(connectionsWithinMemoryLimit(16384, 1024)).toBe(1);
});
