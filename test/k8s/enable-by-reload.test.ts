// Discovery loads the Kubernetes client only when a source is configured; a config reload
// that adds the first source brings it up, and readiness waits for that source to sync.
import { startKubeApiServer, type KubeApiServer } from '../support/kube-apiserver.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/upstream.js';
import { waitFor } from '../support/wait.js';
import { FAST } from './harness.js';
import { pod } from './objects.js';

let api: KubeApiServer;
let upstream: RecordingUpstream;
let sc: TestSidecar;

beforeAll(async () => {
  api = await startKubeApiServer();
  api.upsert('pods', pod('traefik-1', ['10.0.0.1']));
  upstream = await startRecordingUpstream();
  sc = await startSidecar(upstream.url, {}, { configFile: true, discovery: { env: api.env, timing: FAST } });
});
afterAll(async () => {
  await sc.stop();
  await upstream.close();
  await api.close();
});

test('with no source configured the API is never contacted; a reload adding one starts it', async () => {
  const trusted = (ip: string) => sc.sidecar.runtime.context().trusted.lookup(ip).trusted;
  expect((await fetch(`${sc.adminUrl}/readyz`)).status).toBe(200);
  expect(api.requests).toHaveLength(0);

  sc.writeConfig({
    ...sc.input,
    trust: { ...sc.input.trust, discovery: { pods: [{ namespace: 'traefik', labelSelector: 'app.kubernetes.io/name=traefik' }] } },
  });
  await waitFor(() => trusted('10.0.0.1'), 'the pod trusted after the reload');
  expect((await fetch(`${sc.adminUrl}/readyz`)).status).toBe(200);
  expect(api.requests.some((r) => r.resource === 'pods' && !r.watch)).toBe(true);
});
