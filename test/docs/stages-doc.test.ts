// The decision's stages are one list in one order: the code's (STAGES, each refusal code's
// stage), decide.ts's own summary, the README's picture and map, and docs/metrics.md.
import { readFileSync } from 'node:fs';
import { STAGE_OF, STAGES } from '../../src/vocabulary/refusals.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const readme = read('README.md');
const arrows = STAGES.join(' → ');

test('the README picture numbers the stages in the code order', () => {
  const picture = readme.slice(readme.indexOf('## The request path'), readme.indexOf('Refusals get'));
  const steps = [...picture.matchAll(/│ (\d) (\w+) /g)].map((m) => [Number(m[1]), m[2]]);
  expect(steps).toEqual(STAGES.map((stage, i) => [i + 1, stage]));
});

test('decide.ts and the README map name the same pipeline', () => {
  expect(read('src/decision/decide.ts').replace(/\n\/\/ /g, ' ')).toContain(`pure stages: ${arrows}.`);
  expect(readme).toContain(`the pipeline: ${arrows}`);
});

test('docs/metrics.md lists each refusal code under the stage that gives it, stages in order', () => {
  const rows = [...read('docs/metrics.md').matchAll(/^\| (\w+) \| (`.*) \|$/gm)].map((m) => [m[1], [...m[2]!.matchAll(/`(\w+)`/g)].map((c) => c[1])]);
  const expected = STAGES.map((stage) => [stage, Object.keys(STAGE_OF).filter((reason) => STAGE_OF[reason as keyof typeof STAGE_OF] === stage)]);
  expect(rows).toEqual(expected);
});
