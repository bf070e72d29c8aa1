// The open-descriptor count a scrape reports, by both of its ways: the size of
// /proc/self/fd (Linux 6.2 and later), and a listing where the size says nothing
// (/proc/self/fdinfo has one entry per descriptor too, and a size of 0 on every kernel).
// Counted in a Node process of its own: jest's cache writes open and close descriptors
// in the background of its workers.
import { execFileSync } from 'node:child_process';

const MODULE = new URL('../../../src/metrics/descriptors.ts', import.meta.url).pathname;
const EXTRA = 40;

const counts = JSON.parse(
  execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { closeSync, openSync, readdirSync, statSync } from 'node:fs';
       import { openDescriptors } from ${JSON.stringify(MODULE)};
       const before = await openDescriptors();
       const held = Array.from({ length: ${EXTRA} }, () => openSync('/dev/null', 'r'));
       const counted = await openDescriptors();
       // readdirSync's own descriptor is closed once it returns, but listed.
       const listed = readdirSync('/proc/self/fd').length - 1;
       const byListing = await openDescriptors('/proc/self/fdinfo');
       const fdinfoSize = statSync('/proc/self/fdinfo').size;
       for (const fd of held) closeSync(fd);
       const after = await openDescriptors();
       console.log(JSON.stringify({ before, counted, listed, byListing, fdinfoSize, after }));`,
    ],
    { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
  ),
) as Record<string, number>;

test('the count follows descriptors opened and closed', () => {
  expect(counts['counted']! - counts['before']!).toBe(EXTRA);
  expect(counts['after']).toBe(counts['before']);
});

test('both ways agree with a listing of /proc/self/fd', () => {
  expect(counts['fdinfoSize']).toBe(0);
  expect(counts['listed']).toBe(counts['counted']);
  expect(counts['byListing']).toBe(counts['counted']);
});
