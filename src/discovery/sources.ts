// The configured discovery sources, each named as it appears in the registry, in logs
// (`trustedBy`) and in metrics, with what it watches, what an object contributes, and
// the RBAC it needs (quoted when the API server refuses).
import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { DiscoveryConfig } from '../config/schema.js';
import { endpointSliceAddresses, nodeAddresses, nodePodCIDRs, podAddresses } from './extract.js';
import type { ListPage } from './informer.js';

export interface SourceSpec {
  /** Registry name, e.g. `pods:traefik/app.kubernetes.io/name=traefik`. */
  readonly name: string;
  /** Changes whenever the source must be restarted (name plus settings not in it). */
  readonly key: string;
  readonly path: string;
  readonly labelSelector: string;
  readonly needs: string;
  list(kc: KubeConfig): ListPage<KubernetesObject>;
  contribution(obj: KubernetesObject): string[];
}

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export function sourceSpecs(d: DiscoveryConfig): SourceSpec[] {
  const specs: SourceSpec[] = [];
  if (d.nodePodCIDRs.enabled) {
    const selector = d.nodePodCIDRs.nodeSelector;
    specs.push(nodeSpec(selector ? `nodePodCIDRs:${selector}` : 'nodePodCIDRs', selector, nodePodCIDRs));
  }
  if (d.nodeAddresses.enabled) {
    const types = [...d.nodeAddresses.types];
    const spec = nodeSpec('nodeAddresses', '', (n) => nodeAddresses(n, types));
    specs.push({ ...spec, key: `${spec.key}:${types.join(',')}` });
  }
  for (const { namespace, labelSelector } of d.pods) {
    specs.push({
      name: `pods:${namespace}/${labelSelector}`,
      key: `pods:${namespace}/${labelSelector}`,
      path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
      labelSelector,
      needs: `list and watch on pods in namespace ${namespace} (a Role)`,
      list: (kc) => {
        const api = kc.makeApiClient(CoreV1Api);
        return (cont, limit, options) => api.listNamespacedPod({ namespace, labelSelector, limit, _continue: cont }, options);
      },
      contribution: podAddresses,
    });
  }
  for (const { namespace, service } of d.endpointSlices) {
    const labelSelector = `${SERVICE_NAME_LABEL}=${service}`;
    specs.push({
      name: `endpointSlices:${namespace}/${service}`,
      key: `endpointSlices:${namespace}/${service}`,
      path: `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
      labelSelector,
      needs: `list and watch on endpointslices (discovery.k8s.io) in namespace ${namespace} (a Role)`,
      list: (kc) => {
        const api = kc.makeApiClient(DiscoveryV1Api);
        return (cont, limit, options) => api.listNamespacedEndpointSlice({ namespace, labelSelector, limit, _continue: cont }, options);
      },
      contribution: endpointSliceAddresses,
    });
  }
  return specs;
}

function nodeSpec(name: string, labelSelector: string, contribution: (n: KubernetesObject) => string[]): SourceSpec {
  return {
    name,
    key: name,
    path: '/api/v1/nodes',
    labelSelector,
    needs: 'list and watch on nodes (a ClusterRole)',
    list: (kc) => {
      const api = kc.makeApiClient(CoreV1Api);
      return (cont, limit, options) => api.listNode({ labelSelector: labelSelector || undefined, limit, _continue: cont }, options);
    },
    contribution,
  };
}
