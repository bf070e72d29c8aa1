// The mesh detector: only a run of MESH_WINDOW connections from one loopback address is a
// mesh; any other peer ends it.
import { MESH_WINDOW, MeshDetector } from '../../../src/trust/mesh.js';

test('a run of connections from one loopback address is a mesh until another peer arrives', () => {
  const d = new MeshDetector();
  for (let i = 1; i < MESH_WINDOW; i++) expect(d.observe('127.0.0.6')).toEqual({ changed: false, suspicion: undefined });
  expect(d.observe('::ffff:127.0.0.6')).toEqual({ changed: true, suspicion: { address: '127.0.0.6', proxy: expect.stringContaining('Istio') } });
  expect(d.observe('127.0.0.6').changed).toBe(false);
  expect(d.observe('10.0.0.7')).toEqual({ changed: true, suspicion: undefined });
  // Alternating loopback addresses are two containers, not one proxy.
  for (let i = 0; i < 3 * MESH_WINDOW; i++) expect(d.observe(i % 2 ? '127.0.0.1' : '127.0.0.6').suspicion).toBeUndefined();
  for (let i = 0; i < MESH_WINDOW; i++) d.observe('::1');
  expect(d.suspicion).toEqual({ address: '::1', proxy: 'a proxy in the pod' });
});
