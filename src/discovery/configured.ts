// Whether any discovery source is configured. Kept apart from the sources themselves so
// the sidecar can ask without loading the Kubernetes client (about 90 MB of RSS).
import type { DiscoveryConfig } from '../config/schema.js';

export function discoveryConfigured(d: DiscoveryConfig): boolean {
  return d.pods.length > 0 || d.endpointSlices.length > 0 || d.nodePodCIDRs.enabled || d.nodeAddresses.enabled;
}
