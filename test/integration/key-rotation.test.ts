// Keys rotate without a restart: new files and a new activeKeyId apply live, a Kubernetes
// Secret mount's symlink swap is picked up, and a missing or short key fails closed.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { verifyAssertion } from '../../src/assertion/verify.js';
import { sample, scrape } from '../support/metrics.js';
import { startSidecar, TEST_KEY, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const USER = { 'x-auth-request-email': 'alice@example.com' };
let upstream: RecordingUpstream;
const sidecars: TestSidecar[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  upstream = await startRecordingUpstream();
});
afterAll(async () => {
  for (const sc of sidecars) await sc.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await upstream.close();
});

/** Every key (id and bytes) a test here installed: whatever reached the upstream must verify with one. */
const installed: Array<[string, Uint8Array]> = [['k1', TEST_KEY]];

afterEach(async () => {
  for (const r of upstream.received) {
    const tokens = upstream.valuesOf(r, 'x-trusted-proxy-assertion');
    expect(tokens).toHaveLength(1);
    const verified = await Promise.any(installed.map((k) => verifyAssertion(tokens[0]!, { keys: new Map([k]) })));
    expect(verified.sub).toBe('alice@example.com');
  }
});

async function start(...args: Parameters<typeof startSidecar> extends [string, ...infer R] ? R : never): Promise<TestSidecar> {
  const sc = await startSidecar(upstream.url, ...args);
  sidecars.push(sc);
  return sc;
}

/** Sends one allowed request; returns the client's status and the kid the upstream saw. */
async function probe(sc: TestSidecar): Promise<{ status: number; body: string; kid: string | undefined; token: string | undefined }> {
  const before = upstream.received.length;
  const res = await fetch(`${sc.url}/probe`, { headers: USER });
  const body = await res.text();
  const got = upstream.received.slice(before);
  expect(got.length).toBeLessThanOrEqual(1);
  const token = got[0] && upstream.valuesOf(got[0], 'x-trusted-proxy-assertion')[0];
  return { status: res.status, body, token, kid: token ? (decodeProtectedHeader(token).kid as string) : undefined };
}

function newKey(): Buffer {
  return randomBytes(32);
}

test('a second key file plus a new activeKeyId (config reload) switch signing to the new kid', async () => {
  const sc = await start({ assertion: { activeKeyId: 'k1' } }, { configFile: true });
  expect((await probe(sc)).kid).toBe('k1');

  const k2 = newKey();
  installed.push(['k2', k2]);
  writeFileSync(join(sc.keysDir, 'k2'), k2);
  await waitFor(async () => sample(await scrape(sc.adminUrl), 'trusted_proxy_assertion_keys_loaded') === 2, 'two keys loaded');
  expect((await probe(sc)).kid).toBe('k1');

  sc.writeConfig({ ...sc.input, assertion: { ...sc.input.assertion, activeKeyId: 'k2' } });
  await waitFor(() => sc.logs.some((l) => l.msg === 'config reloaded'), 'config reload');
  const after = await probe(sc);
  expect(after).toMatchObject({ status: 200, kid: 'k2' });
  await expect(verifyAssertion(after.token!, { keys: new Map([['k2', k2]]) })).resolves.toMatchObject({ sub: 'alice@example.com' });
  // The old key alone no longer verifies what is sent now.
  await expect(verifyAssertion(after.token!, { keys: new Map([['k1', TEST_KEY]]) })).rejects.toMatchObject({ code: 'unknown_key' });
  const metrics = await scrape(sc.adminUrl);
  expect(sample(metrics, 'trusted_proxy_assertions_signed_total', { kid: 'k2' })).toBe(1);
  expect(sample(metrics, 'trusted_proxy_config_reloads_total', { result: 'applied' })).toBe(1);
});

/**
 * A Secret volume as the kubelet writes it: the visible names are symlinks into `..data`,
 * itself a symlink to a timestamped folder; an update writes a new folder and renames a
 * fresh `..data` over the old one in one step.
 */
class SecretMount {
  readonly dir = mkdtempSync(join(tmpdir(), 'tps-secret-'));
  private generation = 0;
  private current: string | undefined;
  private names = new Set<string>();

  constructor(keys: Record<string, Buffer>) {
    dirs.push(this.dir);
    this.update(keys);
  }

  update(keys: Record<string, Buffer>): void {
    const folder = `..2026_01_01_00_00_00.${String(++this.generation).padStart(9, '0')}`;
    mkdirSync(join(this.dir, folder));
    for (const [name, bytes] of Object.entries(keys)) writeFileSync(join(this.dir, folder, name), bytes, { mode: 0o400 });
    symlinkSync(folder, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    for (const name of Object.keys(keys)) {
      if (!this.names.has(name)) symlinkSync(join('..data', name), join(this.dir, name));
    }
    for (const name of this.names) if (!(name in keys)) unlinkSync(join(this.dir, name));
    this.names = new Set(Object.keys(keys));
    if (this.current) rmSync(join(this.dir, this.current), { recursive: true });
    this.current = folder;
  }
}

test('a Secret-style mount updated by symlink swap is picked up: new key, new bytes for a kid', async () => {
  const a = newKey();
  const b = newKey();
  const c = newKey();
  const mount = new SecretMount({ ka: a });
  installed.push(['ka', a], ['kb', b], ['kb', c]);
  const sc = await start({ assertion: { keysDir: mount.dir, activeKeyId: 'ka' } }, { configFile: true });
  const first = await probe(sc);
  expect(first.kid).toBe('ka');
  await verifyAssertion(first.token!, { keys: new Map([['ka', a]]) });

  mount.update({ ka: a, kb: b });
  await waitFor(async () => sample(await scrape(sc.adminUrl), 'trusted_proxy_assertion_keys_loaded') === 2, 'kb loaded');
  sc.writeConfig({ ...sc.input, assertion: { ...sc.input.assertion, activeKeyId: 'kb' } });
  await waitFor(() => sc.logs.some((l) => l.msg === 'config reloaded'), 'config reload');
  const second = await probe(sc);
  expect(second.kid).toBe('kb');
  await verifyAssertion(second.token!, { keys: new Map([['kb', b]]) });

  // Same key id, new bytes (the Secret's value replaced): the next assertion uses them.
  mount.update({ kb: c });
  await waitFor(async () => {
    const p = await probe(sc);
    return (
      p.kid === 'kb' &&
      (await verifyAssertion(p.token!, { keys: new Map([['kb', c]]) }).then(
        () => p,
        () => false,
      ))
    );
  }, 'kb re-read with its new bytes');
  const third = await probe(sc);
  await expect(verifyAssertion(third.token!, { keys: new Map([['kb', b]]) })).rejects.toMatchObject({ code: 'signature' });
  // The mount no longer has ka: it is gone from the ring too.
  expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_assertion_keys_loaded')).toBe(1);
});

test('the active key removed or truncated below 32 bytes: 503, not ready, nothing reaches the upstream; restored: serving', async () => {
  const sc = await start();
  const keyFile = join(sc.keysDir, 'k1');
  expect((await probe(sc)).status).toBe(200);
  expect((await fetch(`${sc.adminUrl}/readyz`)).status).toBe(200);

  const breakages: Array<[string, () => void]> = [
    ['removed', () => unlinkSync(keyFile)],
    ['truncated to 31 bytes', () => writeFileSync(keyFile, TEST_KEY.subarray(0, 31))],
  ];
  for (const [what, breakKey] of breakages) {
    breakKey();
    const ready = await waitFor(async () => {
      const res = await fetch(`${sc.adminUrl}/readyz`);
      return res.status === 503 && ((await res.json()) as { problems: string[] });
    }, `readyz 503 after the key was ${what}`);
    expect(ready.problems).toContain('no assertion key');
    const before = upstream.received.length;
    for (let i = 0; i < 3; i++) {
      const refused = await probe(sc);
      expect(refused).toMatchObject({ status: 503, body: '{"error":"assertion_key_unavailable"}', token: undefined });
    }
    expect(upstream.received.length).toBe(before);
    const metrics = await scrape(sc.adminUrl);
    expect(sample(metrics, 'trusted_proxy_assertion_keys_loaded')).toBe(0);
    expect(sample(metrics, 'trusted_proxy_decisions_total', { result: 'refused', reason: 'assertion_key_unavailable' })).toBeGreaterThanOrEqual(3);
    const logged = JSON.stringify(sc.logs);
    for (const encoding of ['hex', 'base64', 'base64url'] as const) expect(logged).not.toContain(TEST_KEY.toString(encoding));

    writeFileSync(keyFile, TEST_KEY);
    await waitFor(async () => (await fetch(`${sc.adminUrl}/readyz`)).status === 200, `readyz 200 after the ${what} key was restored`);
    expect(await probe(sc)).toMatchObject({ status: 200, kid: 'k1' });
  }
});

test('activeKeyId switched before its key file arrives: refused (503) until the file appears, then signed with it', async () => {
  const sc = await start({ assertion: { activeKeyId: 'k1' } }, { configFile: true });
  expect((await probe(sc)).kid).toBe('k1');
  sc.writeConfig({ ...sc.input, assertion: { ...sc.input.assertion, activeKeyId: 'k3' } });
  await waitFor(() => sc.logs.some((l) => l.msg === 'config reloaded'), 'config reload');
  const before = upstream.received.length;
  expect(await probe(sc)).toMatchObject({ status: 503, body: '{"error":"assertion_key_unavailable"}' });
  expect(upstream.received.length).toBe(before);
  const problems = sc.logs.filter((l) => l.msg === 'no usable assertion key: requests are refused until one is present').at(-1)?.problems;
  expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/^activeKeyId k3: no valid key file/)]));

  const k3 = newKey();
  installed.push(['k3', k3]);
  writeFileSync(join(sc.keysDir, 'k3'), k3);
  await waitFor(async () => (await fetch(`${sc.adminUrl}/readyz`)).status === 200, 'ready once k3 exists');
  expect(await probe(sc)).toMatchObject({ status: 200, kid: 'k3' });
});
