// Reloading the upstream settings: a new gateway address applies to the next request, and
// a request decided before the reload goes where its own snapshot says (one snapshot from
// decision to upstream write); a switch between http and https cannot apply to a live
// connection pool and is refused whole, the old config serving on.
import { RawClient, statuses } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { answerWithLength, type RecordingUpstream, startRecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

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
  await waitFor(() => sc.logs.filter((l) => l.msg === 'config reload rejected; the previous config stays in force').length === rejected + 1, 'rejected reload');
  const line = sc.logs.filter((l) => l.msg === 'config reload rejected; the previous config stays in force').at(-1)!;
  expect(line.problems).toEqual(['upstream.url: switching between http and https needs a restart']);
  expect((await fetch(`${sc.url}/three`, { headers: ALICE })).status).toBe(200);
  expect(second.received.map((r) => r.url)).toEqual(['/two', '/three']);
});

test('a request waiting for a pooled connection when the upstream changes is forwarded to the upstream it was decided for', async () => {
  const held = await startRecordingUpstream(answerWithLength, '127.0.0.1', { websockets: 'raw', keepAliveTimeoutMs: 2000, keep: 100 });
  const other = await startRecordingUpstream();
  const one = await startSidecar(held.url, { upstream: { maxSockets: 1 }, limits: { queueTimeoutSeconds: 30 } }, { configFile: true });
  const clients: RawClient[] = [];
  const send = async (user: string, path: string) => {
    const client = await RawClient.connect(one.port);
    client.write(`GET ${path} HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: ${user}\r\nConnection: close\r\n\r\n`);
    clients.push(client);
    return client;
  };
  try {
    await send('alice@example.com', '/hold/first');
    await waitFor(() => held.held.size === 1, 'the only pooled connection taken');
    const waiting = await send('bob@example.com', '/decided-before');
    await waitFor(() => one.sidecar.admission.slots.queued === 1, 'a request waiting for the pool');

    one.writeConfig({ ...one.input, upstream: { url: other.url, maxSockets: 1 } });
    await waitFor(() => one.logs.some((l) => l.msg === 'config reloaded'), 'config reload');
    held.held.get('/hold/first')!.end('done');

    const answer = await waiting.receive((t) => /\r\n\r\n[\s\S]*got 0/.test(t), 'the waiting request answered by the old upstream');
    expect(statuses(answer)).toEqual([200]);
    expect(other.received).toHaveLength(0);
    // The next request is decided under the new snapshot.
    expect((await fetch(`${one.url}/decided-after`, { headers: ALICE })).status).toBe(200);
    expect(other.received.map((r) => r.url)).toEqual(['/decided-after']);
  } finally {
    for (const c of clients) c.destroy();
    held.releaseAll();
    await one.stop();
    await held.close();
    await other.close();
  }
});
