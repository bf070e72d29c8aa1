// Noticing a service mesh. With a mesh's proxy in the pod, every connection reaches the
// sidecar from that proxy on loopback (Istio's sidecar from 127.0.0.6; Linkerd's, and
// Envoy sidecars of Consul, from 127.0.0.1), so the source address says nothing about the
// client any more. The detector watches the data port's recent connections; when all of
// the last WINDOW came from one loopback address, it says so, and the shell reports it
// (log, metric, readiness, docs/kubernetes.md "Service meshes").
import { isLoopback, parseAddress } from './address.js';

/** Enough connections that a test client or a probe on loopback is not mistaken for a mesh. */
export const MESH_WINDOW = 20;

/** The mesh proxies known by the loopback address they connect from. */
const KNOWN: Readonly<Record<string, string>> = {
  '127.0.0.6': "Istio's sidecar (or another Envoy-based mesh)",
  '127.0.0.1': "a proxy in the pod (Linkerd's, or an Envoy sidecar such as Consul's)",
  '::1': 'a proxy in the pod',
};

export interface MeshSuspicion {
  /** The one loopback address every recent connection came from. */
  readonly address: string;
  readonly proxy: string;
}

export class MeshDetector {
  private last: string | undefined;
  private run = 0;
  private current: MeshSuspicion | undefined;

  /** Records a connection's peer; returns the new suspicion (or its end) when it changes. */
  observe(peer: string): { changed: boolean; suspicion: MeshSuspicion | undefined } {
    const address = parseAddress(peer);
    const text = address && isLoopback(address) ? address.text : undefined;
    if (text !== undefined && text === this.last) this.run++;
    else this.run = text === undefined ? 0 : 1;
    this.last = text;
    const suspicion = text !== undefined && this.run >= MESH_WINDOW ? { address: text, proxy: KNOWN[text] ?? 'a proxy in the pod' } : undefined;
    const changed = suspicion?.address !== this.current?.address;
    this.current = suspicion;
    return { changed, suspicion };
  }

  get suspicion(): MeshSuspicion | undefined {
    return this.current;
  }
}

/**
 * Whether the config already answers a mesh: the proxy trusted by address and the client
 * by the certificate it reports (trust.clientCertificates.from: xfcc).
 */
export function meshAnswered(trust: { require: string; clientCertificates: { from: string } }): boolean {
  return trust.require === 'both' && trust.clientCertificates.from === 'xfcc';
}
