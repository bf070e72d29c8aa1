// The runtime's snapshots: every change compiles one new immutable snapshot and swaps it
// in whole, reusing the parts whose inputs did not change; listeners see the snapshot
// replaced and the new one, never a state between them.
import { createSecretKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/logging/logger.js';
import { createMetrics } from '../../../src/metrics/metrics.js';
import { Runtime } from '../../../src/runtime/runtime.js';
import { compileSnapshot, type Snapshot } from '../../../src/runtime/snapshot.js';
import { TrustedSet } from '../../../src/trust/trusted-set.js';
import { config, KEY, KID } from '../context.js';

let keysDir: string;
beforeAll(() => {
  keysDir = mkdtempSync(join(tmpdir(), 'tps-snapshot-'));
  writeFileSync(join(keysDir, KID), KEY);
});
afterAll(() => rmSync(keysDir, { recursive: true, force: true }));

const silent = () => createLogger('info', new Writable({ write: (_c, _e, done) => done() }));

function runtime(input: Parameters<typeof config>[0] = {}): { runtime: Runtime; swaps: [Snapshot, Snapshot][] } {
  const r = new Runtime(config({ ...input, assertion: { keysDir } }), silent(), createMetrics('test'));
  const swaps: [Snapshot, Snapshot][] = [];
  r.onSwap((previous, next) => swaps.push([previous, next]));
  return { runtime: r, swaps };
}

test('a snapshot is frozen, and a recompile reuses the rules and the signer whose inputs are the same', () => {
  const keys = { algorithm: 'HS256' as const, keys: new Map([[KID, createSecretKey(KEY)]]), activeKeyId: KID, problems: [] };
  const cfg = config();
  const first = compileSnapshot({ config: cfg, trusted: new TrustedSet([], false), keys, providerKeys: undefined });
  expect(Object.isFrozen(first)).toBe(true);
  const second = compileSnapshot(
    { config: cfg, trusted: new TrustedSet([{ cidr: '10.0.0.0/8', source: 'static' }], false), keys, providerKeys: undefined },
    first,
  );
  expect(second.rules).toBe(first.rules);
  expect(second.signer).toBe(first.signer);
  expect(second.trusted).not.toBe(first.trusted);
  const third = compileSnapshot({ config: config(), trusted: second.trusted, keys: { ...keys }, providerKeys: undefined }, second);
  expect(third.rules).not.toBe(second.rules);
  expect(third.signer).not.toBe(second.signer);
  expect(third.signer?.kid).toBe(KID);
});

test('a config reload is one swap: the new static CIDRs and allowLoopback arrive together, and the old snapshot is untouched', () => {
  const { runtime: r, swaps } = runtime({ trust: { cidrs: ['10.0.0.0/8'] } });
  const before = r.snapshot;
  r.applyConfig(config({ trust: { cidrs: ['192.0.2.0/24', '127.0.0.1'], allowLoopback: true }, assertion: { keysDir } }));
  expect(swaps).toHaveLength(1);
  const [previous, next] = swaps[0]!;
  expect(previous).toBe(before);
  expect(next).toBe(r.snapshot);
  expect(next.trusted.lookup('192.0.2.1').trusted).toBe(true);
  expect(next.trusted.lookup('127.0.0.1').trusted).toBe(true);
  expect(next.trusted.lookup('10.0.0.1').trusted).toBe(false);
  expect(before.trusted.lookup('10.0.0.1').trusted).toBe(true);
  expect(before.trusted.lookup('127.0.0.1').trusted).toBe(false);
  // The key folder did not move: the same signer signs on.
  expect(next.signer).toBe(before.signer);
});

test('a discovery source change swaps in a new trusted set and keeps the compiled policy and signer', () => {
  const { runtime: r, swaps } = runtime({ trust: { cidrs: ['10.0.0.0/8'] } });
  const before = r.snapshot;
  r.trust.setSource('pods', { synced: true, cidrs: ['198.51.100.0/24'] });
  expect(swaps).toHaveLength(1);
  const next = r.snapshot;
  expect(next.trusted.lookup('198.51.100.7')).toMatchObject({ trusted: true, sources: ['pods'] });
  expect(next.trusted.lookup('10.0.0.1')).toMatchObject({ trusted: true, sources: ['static'] });
  expect(next.config).toBe(before.config);
  expect(next.rules).toBe(before.rules);
  expect(next.signer).toBe(before.signer);
});

test('a key folder reload swaps in a new signer; with no usable key the snapshot has none and readiness says so', () => {
  const { runtime: r, swaps } = runtime();
  expect(r.readinessProblems()).toEqual([]);
  rmSync(join(keysDir, KID));
  try {
    r.reloadKeys();
    expect(swaps).toHaveLength(1);
    expect(r.snapshot.signer).toBeUndefined();
    expect(r.snapshot.rules).toBe(swaps[0]![0].rules);
    expect(r.readinessProblems()).toEqual(['no assertion key']);
  } finally {
    writeFileSync(join(keysDir, KID), KEY);
  }
});
