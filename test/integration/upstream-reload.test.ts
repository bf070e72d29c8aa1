// Reloading the upstream settings: a new gateway address applies to the next request; a
// switch between http and https cannot apply to a live connection pool and is refused
// whole, the old config serving on.
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';

const ALICE = { 'x-auth-request-email': 'alice@example.com' };
let first: RecordingUpstream;
let second: RecordingUpstream;
let sc: TestSidecar;

beforeAll(async () => {
  first = await startRecordingUpstream();
  second = await startRecordingUpstream();
  sc = await startSidecar(first.url, {}, { configFile: true });
});
afterAll(async () => {
  await sc.stop();
  await first.close();
  await second.close();
});

const logged = (msg: string) => sc.logs.filter((l) => l.msg === msg).length;

test('a new upstream URL applies to the next request', async () => {
  expect((await fetch(`${sc.url}/one`, { headers: ALICE })).status).toBe(200);
  expect(first.received.map((r) => r.url)).toEqual(['/one']);

  sc.writeConfig({ ...sc.input, upstream: { url: second.url, connectTimeoutSeconds: 2, maxSockets: 8 } });
  await waitFor(() => logged('config reloaded') === 1, 'config reload');

  expect((await fetch(`${sc.url}/two`, { headers: ALICE })).status).toBe(200);
  expect(second.received.map((r) => r.url)).toEqual(['/two']);
  expect(first.received).toHaveLength(1);
});

test('switching the upstream to https is refused and the running config keeps serving', async () => {
  const rejected = sc.logs.filter((l) => l.msg === 'config reload rejected; the previous config stays in force').length;
  sc.writeConfig({ ...sc.input, upstream: { url: second.url.replace('http:', 'https:') } });
  await waitFor(
    () => sc.logs.filter((l) => l.msg === 'config reload rejected; the previous config stays in force').length === rejected + 1,
    'rejected reload',
  );
  const line = sc.logs.filter((l) => l.msg === 'config reload rejected; the previous config stays in force').at(-1)!;
  expect(line.problems).toEqual(['upstream.url: switching between http and https needs a restart']);
  expect((await fetch(`${sc.url}/three`, { headers: ALICE })).status).toBe(200);
  expect(second.received.map((r) => r.url)).toEqual(['/two', '/three']);
});
