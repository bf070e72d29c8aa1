// kube-rbac-proxy as a comparison path: the proxy Kubernetes users put in front of a
// service, in front of the same upstream, each request carrying a valid ServiceAccount
// token. The check is real: the tests' API server (kube-apiserver on kine) reviews the
// token (TokenReview) and RBAC allows the request's path (SubjectAccessReview); the proxy
// caches both answers (2 and 5 minutes), as it does in a cluster, so at steady state each
// request costs it a cache lookup per check, not a call. Its CPU is the proxy's alone.
// Plain HTTP (its deprecated insecure listener), as every other path here: no path pays
// for TLS.
import { resolve } from 'node:path';
import { startKubeCluster } from '../harness/kube-cluster.js';
import { WRK_PATH } from './load.js';
import type { RunningPath } from './paths.js';
import { freePort, owned, start, tempDir, until, type Proc } from './procs.js';

const KUBE_RBAC_PROXY = resolve('.tools/bin/kube-rbac-proxy');
const NAMESPACE = 'bench';
const CLIENT = 'client';

export async function startKubeRbacProxy(upstreamPort: number): Promise<RunningPath> {
  const cluster = await startKubeCluster({ onSpawn: owned });
  tempDir(cluster.dir);
  let proxy: Proc | undefined;
  const stop = async () => {
    await proxy?.stop();
    await cluster.stop();
  };
  try {
    await cluster.namespace(NAMESPACE);
    await cluster.call('POST', `/api/v1/namespaces/${NAMESPACE}/serviceaccounts`, { metadata: { name: CLIENT } });
    // What kube-rbac-proxy asks for a request without resource attributes configured: may
    // this user GET this non-resource path.
    const path = new URL(WRK_PATH, 'http://x').pathname;
    await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
      metadata: { name: 'bench-client' },
      rules: [{ nonResourceURLs: [path], verbs: ['get'] }],
    });
    await cluster.call('POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      metadata: { name: 'bench-client' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'bench-client' },
      subjects: [{ kind: 'ServiceAccount', name: CLIENT, namespace: NAMESPACE }],
    });
    // Longer than a whole `make bench`.
    const token = await cluster.serviceAccountToken(NAMESPACE, CLIENT, 4 * 3600);
    const listen = await freePort();
    // The proxy's own rights to review tokens and access come from the admin kubeconfig.
    proxy = start(KUBE_RBAC_PROXY, [
      `--insecure-listen-address=127.0.0.1:${listen}`,
      `--upstream=http://127.0.0.1:${upstreamPort}/`,
      `--kubeconfig=${cluster.kubeconfig}`,
      // The user passed on to the upstream as headers, as the sidecar passes it.
      '--auth-header-fields-enabled',
    ]);
    const url = `http://127.0.0.1:${listen}`;
    const credential = { header: 'Authorization', value: `Bearer ${token}` };
    // Ready once a request with the token passes: both reviews done, and cached.
    await until(
      'kube-rbac-proxy',
      async () =>
        (await fetch(`${url}${WRK_PATH}`, { headers: { [credential.header]: credential.value }, signal: AbortSignal.timeout(2000) }).catch(() => undefined))
          ?.status === 200,
      30000,
    );
    const refused = await fetch(`${url}${WRK_PATH}`, { headers: { [credential.header]: 'Bearer not-a-token' } });
    if (refused.status !== 401) throw new Error(`kube-rbac-proxy let a wrong token through: ${refused.status}`);
    const running = proxy;
    return { url, credential, pids: () => [running.pid], stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${proxy?.output() ?? ''}`);
  }
}
