// One memory-reducing collection before the sidecar listens. Start-up (compiling the
// bundle, parsing the config, building the schema and the first snapshot) keeps many
// objects alive across young-generation collections, so V8 grows the young generation to
// several MB and leaves garbage in the old one. V8 gives that memory back only after a
// full collection, which a sidecar idle from then on never makes: it stays in the idle RSS
// for good (4 to 5 MB; docs/decisions/0007-idle-memory.md). Collecting once here, before anything
// listens, costs the cold start a few tens of ms and stalls no request.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

export function collectStartupGarbage(): void {
  // Scripts get no collector without --expose-gc on the command line. Set only while one
  // new context is made, the flag gives that context its `gc` and no other context one
  // (jest's leak detector takes its collector the same way).
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as Collect;
  setFlagsFromString('--no-expose-gc');
  // 'last-resort' is V8's memory-reducing full collection: it shrinks the young generation
  // and releases emptied pages at once, not after the memory reducer's delay of seconds.
  collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
}
