// What a node sees that an API server does not: a kubelet resolves a probe's named port in
// the probed container's own ports only, so a probe naming a port of another container of
// the pod errors forever (and a gateway whose startup probe never passes is never Ready),
// while the API server accepts the manifest. Checked over every render users install: the
// chart with each ci/ values file, manifests/base, and the kustomize component on a
// Deployment of the user's, and OpenClaw's own manifests with the components.
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { CI_VALUES, ciValuesFiles, kustomize, layOutOpenClawExample, renderChart, ROOT, type K8sObject } from './k8s.js';

interface Port {
  name?: string;
  containerPort: number;
}
interface Container {
  name: string;
  ports?: Port[];
  restartPolicy?: string;
  [probe: string]: unknown;
}

const PROBES = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;

/** Every probe port that names a port its own container does not have. */
function strayProbePorts(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const spec = (o as any).spec?.template?.spec ?? (o.kind === 'Pod' ? (o as any).spec : undefined);
    if (!spec) continue;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers] as Container[]) {
      for (const probe of PROBES) {
        const action = c[probe] as { httpGet?: { port: unknown }; tcpSocket?: { port: unknown }; grpc?: { port: unknown } } | undefined;
        const port = action?.httpGet?.port ?? action?.tcpSocket?.port ?? action?.grpc?.port;
        if (typeof port === 'string' && !(c.ports ?? []).some((p) => p.name === port)) {
          problems.push(`${o.kind} ${o.metadata.name}: container ${c.name}'s ${probe} names port ${port}, which is not its own`);
        }
      }
    }
  }
  return problems;
}

const renders: [string, () => K8sObject[]][] = [
  ...ciValuesFiles().map((f): [string, () => K8sObject[]] => [`the chart with ci/${f}`, () => renderChart([join(CI_VALUES, f)]).objects]),
  ['manifests/base', () => kustomize(join(ROOT, 'manifests/base'))],
  ["the kustomize component on a Deployment of the user's", () => kustomize(join(import.meta.dirname, 'fixtures/component'))],
  [
    "OpenClaw's own manifests with both components (manifests/examples/openclaw-kustomize)",
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'tps-openclaw-example-'));
      try {
        return kustomize(layOutOpenClawExample(dir).overlay);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  ],
];

test.each(renders)('%s: every probe names a port of the container it probes', (_name, render) => {
  const objects = render();
  expect(objects.some((o) => o.kind === 'Deployment')).toBe(true);
  expect(strayProbePorts(objects)).toEqual([]);
});

test("the check sees the defect it exists for: a gateway probe naming the sidecar's port", () => {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'p' },
    spec: {
      containers: [
        { name: 'gateway', startupProbe: { httpGet: { path: '/gateway/healthz', port: 'admin' } } },
        { name: 'sidecar', ports: [{ name: 'admin', containerPort: 9090 }], readinessProbe: { httpGet: { path: '/readyz', port: 'admin' } } },
      ],
    },
  } as unknown as K8sObject;
  expect(strayProbePorts([pod])).toEqual(["Pod p: container gateway's startupProbe names port admin, which is not its own"]);
});
