// How the sidecar reaches the Kubernetes API: `KUBECONFIG` when set (outside a cluster or
// to override), else the in-cluster service account, built the way the client library's
// loadFromCluster() does but from a folder that can be moved (TPS_SERVICEACCOUNT_DIR).
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { delimiter, join } from 'node:path';
import { KubeConfig, type User } from '@kubernetes/client-node';

type Authenticator = Parameters<KubeConfig['addAuthenticator']>[0];

export const SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TOKEN_PROVIDER = 'projected-service-account-token';

export function loadKubeConfig(env: NodeJS.ProcessEnv): KubeConfig {
  const kc = new KubeConfig();
  if (env.KUBECONFIG) {
    const [first, ...rest] = env.KUBECONFIG.split(delimiter).filter(Boolean);
    kc.loadFromFile(first!);
    for (const file of rest) {
      const more = new KubeConfig();
      more.loadFromFile(file);
      kc.mergeConfig(more, true);
    }
    return kc;
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error('no Kubernetes API configured: set KUBECONFIG, or run in a pod (KUBERNETES_SERVICE_HOST/PORT)');
  }
  const dir = env.TPS_SERVICEACCOUNT_DIR || SERVICEACCOUNT_DIR;
  kc.loadFromClusterAndUser(
    { name: 'inCluster', server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(dir, 'ca.crt'), skipTLSVerify: false },
    { name: 'inClusterUser', authProvider: { name: TOKEN_PROVIDER, config: { path: join(dir, 'token') } } },
  );
  kc.addAuthenticator(projectedToken);
  return kc;
}

/**
 * The projected token is read on every request. The library's own token-file provider
 * caches it for 60 s, so after a rotation it would keep sending a token the API server
 * may already refuse; requests here are few (a list, then long watches), so a read each
 * time costs nothing.
 */
const projectedToken: Authenticator = {
  isAuthProvider: (user: User) => user.authProvider?.name === TOKEN_PROVIDER,
  async applyAuthentication(user, opts) {
    const token = readFileSync(String(user.authProvider.config.path), 'utf8').trim();
    // The library hands over a plain header object (it created it just before).
    const headers = (opts.headers ??= {}) as Record<string, string>;
    headers.Authorization = `Bearer ${token}`;
  },
};
