// A pipelined request with `Expect: 100-continue` behind one still at the gateway: its
// interim 100 may come only before its own final answer, never after it (where a client
// would read it as part of the body, or as the answer to the next request).
import { RawClient, statuses } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { answerWithLength, startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

let upstream: RecordingUpstream;
let sc: TestSidecar;
beforeAll(async () => {
  upstream = await startRecordingUpstream(answerWithLength);
  sc = await startSidecar(upstream.url);
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
});

test.each([
  // Decided and refused while the first is still at the gateway: its 401 is written first.
  ['refused by the sidecar (no identity)', '', [200, 401]],
  ['allowed, answered by the gateway', 'X-Auth-Request-Email: alice@example.com\r\n', [200, 100, 200]],
])('behind a held request, a 100-continue request %s: the 100 never follows its final status', async (_what, identity, expected) => {
  const refusals = () => sc.logs.filter((l) => l['msg'] === 'refused').length;
  const before = refusals();
  const client = await RawClient.connect(sc.port);
  client.write(`GET /hold/first HTTP/1.1\r\nHost: gw\r\nX-Auth-Request-Email: alice@example.com\r\n\r\n`);
  await waitFor(() => upstream.held.has('/hold/first'), 'the first request held at the gateway');
  client.write(`POST /second HTTP/1.1\r\nHost: gw\r\n${identity}Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok`);
  if (identity === '') await waitFor(() => refusals() > before, 'the second request refused while the first is held');
  upstream.releaseAll();
  const reply = await client.receive((t) => statuses(t).filter((s) => s !== 100).length === 2 && t.endsWith(identity === '' ? '}' : 'got 2'), 'both answers');
  client.destroy();
  expect(statuses(reply)).toEqual(expected);
});
