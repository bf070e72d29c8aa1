// A refused peer's cost to the log (the third adversarial pass): 100 refused requests with
// 15 KB targets wrote 1.5 MB of log. Now each line clips the target, a peer writes at most
// its burst before it is held back (counted in a metric, and said in its next line), and
// another peer's refusal is still written.
import { sample, scrape } from '../support/metrics.js';
import { rawRequest, statusOf } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { REFUSAL_LINES } from '../../src/logging/line-budget.js';

let upstream: RecordingUpstream;
let sc: TestSidecar;
beforeAll(async () => {
  upstream = await startRecordingUpstream();
  // Only 127.0.0.1 is trusted: the flood comes from 127.0.0.3, an address outside the set.
  sc = await startSidecar(upstream.url, { trust: { allowLoopback: true, cidrs: ['127.0.0.1/32'] } });
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
});

const refusedLines = () => sc.logs.filter((l) => l['msg'] === 'refused');

test('a flood of refused requests with long targets writes a bounded number of short lines', async () => {
  const target = `/${'a'.repeat(15_000)}`;
  const flood = 100;
  for (let i = 0; i < flood; i++) {
    const reply = await rawRequest(
      sc.port,
      `GET ${target} HTTP/1.1\r\nHost: claw.example.com\r\nX-Auth-Request-Email: evil@example.com\r\nConnection: close\r\n\r\n`,
      '127.0.0.1',
      3000,
      '127.0.0.3',
    );
    expect(statusOf(reply)).toBe(403);
  }
  const lines = refusedLines().filter((l) => l['peer'] === '127.0.0.3');
  // The burst, and what the rate refilled while the flood was sent.
  expect(lines.length).toBeGreaterThanOrEqual(REFUSAL_LINES.peerBurst);
  expect(lines.length).toBeLessThan(flood);
  for (const l of lines) expect(JSON.stringify(l).length).toBeLessThan(1500);
  expect(String(lines[0]!['path'])).toMatch(/^\/a{255}…\[14745 more\]$/);
  const held = sample(await scrape(sc.adminUrl), 'trusted_proxy_log_lines_held_back_total', { line: 'refused' });
  expect(held).toBe(flood - lines.length);
  expect(upstream.received).toHaveLength(0);

  // Another peer, refused now, is written.
  const other = await rawRequest(sc.port, 'GET /x HTTP/1.1\r\nHost: claw.example.com\r\nConnection: close\r\n\r\n', '127.0.0.1', 3000, '127.0.0.1');
  expect(statusOf(other)).toBe(401);
  expect(refusedLines().at(-1)).toMatchObject({ peer: '127.0.0.1', reason: 'identity_missing' });
});
