// collectStartupGarbage() in a Node process of its own (the collection and the flag it
// borrows are process-wide): after a start-up-like burst of surviving objects, V8's young
// generation is back to its initial size, and the collector it took is exposed nowhere.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../../../src/runtime/startup-garbage.ts', import.meta.url));

// Node runs the .ts module by stripping its types.
const CHILD = `
import { getHeapSpaceStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { collectStartupGarbage } from ${JSON.stringify(MODULE)};
const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
const initial = young();
// As start-up does: many objects that live through young collections, so V8 grows the young generation.
let kept = [];
for (let i = 0; i < 300000; i++) kept.push({ i, s: String(i) });
kept = undefined;
const grown = young();
collectStartupGarbage();
process.stdout.write(JSON.stringify({ initial, grown, after: young(), mainContext: typeof globalThis.gc, laterContext: runInNewContext('typeof gc') }));
`;

test('the young generation start-up grew is given back at once, and no context keeps a collector', () => {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHILD], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const { initial, grown, after, mainContext, laterContext } = JSON.parse(out) as Record<string, number | string>;
  // The burst must have grown it, or the test proves nothing.
  expect(grown).toBeGreaterThan(initial as number);
  expect(after).toBe(initial);
  expect({ mainContext, laterContext }).toEqual({ mainContext: 'undefined', laterContext: 'undefined' });
});
