// A service mesh noticed: every data-port connection from one loopback address (the mesh
// proxy's) shows in the log, the metric and, unless the config answers it with
// from: xfcc, in /readyz. The sidecar listens on every address as in a pod; the clients
// connect over loopback from 127.0.0.6, as Istio's sidecar does.
import { sample, scrape } from '../support/metrics.js';
import { rawRequest } from '../support/raw-client.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { MESH_WINDOW } from '../../src/trust/mesh.js';

let upstream: RecordingUpstream;
beforeAll(async () => {
  upstream = await startRecordingUpstream();
});
afterAll(() => upstream.close());

const request = 'GET /x HTTP/1.1\r\nHost: claw.example.com\r\nX-Auth-Request-Email: alice@example.com\r\nConnection: close\r\n\r\n';
const connections = async (sc: TestSidecar, from: string, n: number) => {
  for (let i = 0; i < n; i++) await rawRequest(sc.port, request, '127.0.0.1', 3000, from);
};
const readyz = async (sc: TestSidecar) => {
  const res = await fetch(`${sc.adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { problems: string[] } };
};

test('trusting the mesh proxy by address: noticed, logged, counted, and the sidecar is not ready until it is answered', async () => {
  const sc = await startSidecar(upstream.url, { listen: { host: '0.0.0.0' }, trust: { allowLoopback: true, cidrs: ['127.0.0.6'] } });
  try {
    await connections(sc, '127.0.0.6', MESH_WINDOW - 1);
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_mesh_inbound', { address: '127.0.0.6' })).toBe(0);
    expect((await readyz(sc)).status).toBe(200);

    await connections(sc, '127.0.0.6', 1);
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_mesh_inbound', { address: '127.0.0.6' })).toBe(1);
    const ready = await readyz(sc);
    expect(ready.status).toBe(503);
    expect(ready.body.problems).toEqual([expect.stringMatching(/^every data-port connection comes from 127\.0\.0\.6, Istio's sidecar.*from: xfcc/)]);
    await waitFor(() => sc.logs.some((l) => l['level'] === 40 && l['address'] === '127.0.0.6'), 'the warning', 2000, 10);

    // Another peer: not every connection is the mesh proxy's any more.
    await connections(sc, '127.0.0.1', 1);
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_mesh_inbound', { address: '127.0.0.6' })).toBe(0);
    expect((await readyz(sc)).status).toBe(200);
  } finally {
    await sc.stop();
  }
});

test('answered with from: xfcc: still counted, not a readiness problem', async () => {
  const sc = await startSidecar(upstream.url, {
    listen: { host: '0.0.0.0' },
    trust: {
      allowLoopback: true,
      cidrs: ['127.0.0.6'],
      require: 'both',
      clientCertificates: { from: 'xfcc', spiffeIds: ['spiffe://cluster.local/ns/traefik/sa/traefik'] },
    },
  });
  try {
    await connections(sc, '127.0.0.6', MESH_WINDOW);
    expect(sample(await scrape(sc.adminUrl), 'trusted_proxy_mesh_inbound', { address: '127.0.0.6' })).toBe(1);
    expect(await readyz(sc)).toMatchObject({ status: 200, body: { problems: [] } });
  } finally {
    await sc.stop();
  }
});
