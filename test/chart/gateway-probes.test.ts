// The chart probes the loopback-bound gateway through the sidecar's admin port. Those
// routes must tell a real health answer from the Control UI's catch-all 200.
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';

let gateway: RecordingUpstream;
let sc: TestSidecar;
const answers = new Map<string, { status: number; type: string; body: string }>();

beforeAll(async () => {
  gateway = await startRecordingUpstream((req, res) => {
    const a = answers.get(req.url!) ?? { status: 200, type: 'text/html', body: '<!doctype html><title>Control UI</title>' };
    res.writeHead(a.status, { 'content-type': a.type }).end(a.body);
  });
  sc = await startSidecar(gateway.url);
});
afterAll(async () => {
  await sc.stop();
  await gateway.close();
});

async function probe(path: string) {
  const res = await fetch(`${sc.adminUrl}${path}`);
  return { status: res.status, body: (await res.json()) as { ok: boolean; problem?: string } };
}

const json = (body: unknown, status = 200) => ({ status, type: 'application/json', body: JSON.stringify(body) });

test.each([
  ['{"ok":true}', json({ ok: true })],
  ['{"status":"live"}', json({ status: 'live' })],
  ['{"ready":true,"checks":{}}', json({ ready: true, checks: {} })],
])('healthy JSON %s passes', async (_name, answer) => {
  answers.set('/healthz', answer);
  answers.set('/readyz', answer);
  expect(await probe('/gateway/healthz')).toEqual({ status: 200, body: { ok: true } });
  expect(await probe('/gateway/readyz')).toEqual({ status: 200, body: { ok: true } });
  expect(gateway.received.at(-1)!.url).toBe('/readyz');
});

test.each([
  ['the Control UI catch-all (HTML 200)', undefined, 'gateway answer is not JSON'],
  ['a JSON array', json([1]), 'gateway answer is not a JSON object'],
  ['JSON that says nothing', json({ version: '1' }), 'gateway answer does not say healthy'],
  ['ok: false', json({ ok: false, status: 'ok' }), 'gateway reports unhealthy'],
  ['a 503 with healthy-looking JSON', json({ ok: true }, 503), 'gateway answered 503'],
])('%s fails', async (_name, answer, problem) => {
  if (answer) answers.set('/readyz', answer);
  else answers.delete('/readyz');
  expect(await probe('/gateway/readyz')).toEqual({ status: 503, body: { ok: false, problem } });
});

test('a gateway that is down fails the probe', async () => {
  const down = await startRecordingUpstream();
  const url = down.url;
  await down.close();
  const other = await startSidecar(url);
  try {
    const r = await fetch(`${other.adminUrl}/gateway/healthz`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { problem: string }).problem).toMatch(/^gateway unreachable/);
  } finally {
    await other.stop();
  }
});
