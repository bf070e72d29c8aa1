// What a platform team expects of a chart, with the oauth2-proxy and Traefik charts as the
// yardstick: it works as a subchart, every part can be extended without a fork, its
// defaults do not block a node drain, and its monitoring objects take the usual settings.
// Rendered by real Helm 3 and Helm 4, every object checked against its schema.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CHART, CI_VALUES, find, HELM, KUBE_VERSION, one, parseStream, renderChart, validateObject, type K8sObject } from './k8s.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tps-conventions-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const DEFAULTS = join(CI_VALUES, 'defaults-values.yaml');
const valuesFile = (name: string, values: object) => {
  const path = join(tmp, `${name}.yaml`);
  writeFileSync(path, stringify(values));
  return path;
};
const podSpec = (objects: K8sObject[]) => (one(objects, 'Deployment') as any).spec.template.spec;

const EXTENDED = {
  namespaceOverride: 'claw-system',
  revisionHistoryLimit: 3,
  extraVolumes: [{ name: 'provider-ca', configMap: { name: 'corporate-ca' } }],
  extraInitContainers: [{ name: 'wait-for-vault', image: 'busybox:1.37', command: ['sh', '-c', 'true'] }],
  extraContainers: [{ name: 'log-shipper', image: 'fluent/fluent-bit:4.0' }],
  extraObjects: [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: '{{ .Release.Name }}-extra' }, data: { note: 'as a map' } },
    'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra-text\n',
  ],
  gateway: {
    envFrom: [{ configMapRef: { name: 'openclaw-settings' } }],
    extraVolumeMounts: [{ name: 'provider-ca', mountPath: '/etc/ssl/provider', readOnly: true }],
    providerSecret: 'openclaw-provider-keys',
  },
  sidecar: {
    env: [{ name: 'EXTRA', value: '1' }],
    envFrom: [{ secretRef: { name: 'sidecar-extra' } }],
    // What a provider under a private CA needs: its bundle, and identity.token.caFile naming it.
    extraVolumeMounts: [{ name: 'provider-ca', mountPath: '/etc/ssl/provider', readOnly: true }],
  },
  networkPolicy: {
    extraIngress: [
      { ports: [{ port: 9090, protocol: 'TCP' }], from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } } }] },
    ],
    egress: [
      {
        ports: [
          { port: 53, protocol: 'UDP' },
          { port: 53, protocol: 'TCP' },
        ],
      },
    ],
  },
  serviceMonitor: {
    enabled: true,
    namespace: 'monitoring',
    scheme: 'https',
    tlsConfig: { serverName: 'claw-trusted-proxy-sidecar.claw-system.svc' },
    relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' }],
    metricRelabelings: [{ sourceLabels: ['__name__'], regex: 'nodejs_gc_.*', action: 'drop' }],
  },
  podMonitor: { enabled: true },
  podDisruptionBudget: { enabled: true },
};

describe.each([3, 4] as const)('Helm %i', (helm) => {
  test('as a subchart of an umbrella chart, with global values', () => {
    const umbrella = join(tmp, `umbrella-${helm}`);
    mkdirSync(join(umbrella, 'charts'), { recursive: true });
    writeFileSync(
      join(umbrella, 'Chart.yaml'),
      stringify({
        apiVersion: 'v2',
        name: 'platform',
        version: '1.0.0',
        dependencies: [{ name: 'trusted-proxy-sidecar', version: '0.1.0', repository: `file://${CHART}` }],
      }),
    );
    writeFileSync(
      join(umbrella, 'values.yaml'),
      stringify({ global: { imageRegistry: 'registry.example.com' }, 'trusted-proxy-sidecar': { publicUrl: 'https://claw.example.com' } }),
    );
    execFileSync(HELM[helm], ['dependency', 'update', umbrella], { stdio: 'ignore' });
    const out = execFileSync(HELM[helm], ['template', 'platform', umbrella, '--namespace', 'openclaw', '--kube-version', KUBE_VERSION], { encoding: 'utf8' });
    expect(find(parseStream(out), 'Deployment')).toHaveLength(1);
  });

  test('every extension point lands where it belongs, in the namespace override, and every object is valid', async () => {
    const objects = renderChart([DEFAULTS, valuesFile(`extended-${helm}`, EXTENDED)], { helm }).objects.filter(
      (o) => !o.metadata.annotations?.['helm.sh/hook'],
    );
    for (const o of objects) await validateObject(o);
    // The chart's own namespaced objects: not the discovery Roles (in the ingress
    // controller's namespace), the monitors (in theirs) or the user's extra objects.
    const theirs = ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ServiceMonitor', 'PodMonitor'];
    const namespaced = objects.filter((o) => !theirs.includes(o.kind) && !o.metadata.name.startsWith('claw-extra'));
    expect(namespaced.filter((o) => o.metadata.namespace !== 'claw-system').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
    // The discovery Role's binding names the ServiceAccount where it now lives.
    expect(find(objects, 'RoleBinding').flatMap((b: any) => b.subjects.map((s: any) => s.namespace))).toEqual(['claw-system']);

    const deployment = one(objects, 'Deployment') as any;
    expect(deployment.spec.revisionHistoryLimit).toBe(3);
    const spec = podSpec(objects);
    expect(spec.initContainers.map((c: any) => c.name)).toEqual(['wait-for-vault', 'gateway-config', 'sidecar']);
    expect(spec.containers.map((c: any) => c.name)).toEqual(['gateway', 'log-shipper']);
    expect(spec.volumes.at(-1)).toEqual(EXTENDED.extraVolumes[0]);
    const gateway = spec.containers[0];
    expect(gateway.envFrom).toEqual([{ secretRef: { name: 'openclaw-provider-keys' } }, ...EXTENDED.gateway.envFrom]);
    expect(gateway.volumeMounts.at(-1)).toEqual(EXTENDED.gateway.extraVolumeMounts[0]);
    const sidecar = spec.initContainers.at(-1);
    expect([sidecar.env, sidecar.envFrom, sidecar.volumeMounts.at(-1)]).toEqual([
      EXTENDED.sidecar.env,
      EXTENDED.sidecar.envFrom,
      EXTENDED.sidecar.extraVolumeMounts[0],
    ]);

    const np = one(objects, 'NetworkPolicy') as any;
    expect(np.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec.ingress.at(-1)).toEqual(EXTENDED.networkPolicy.extraIngress[0]);
    expect(np.spec.egress).toEqual(EXTENDED.networkPolicy.egress);

    for (const kind of ['ServiceMonitor', 'PodMonitor']) {
      const monitor = one(objects, kind) as any;
      expect(monitor.metadata.namespace).toBe('monitoring');
      expect(monitor.spec.namespaceSelector).toEqual({ matchNames: ['claw-system'] });
      const [endpoint] = monitor.spec[kind === 'ServiceMonitor' ? 'endpoints' : 'podMetricsEndpoints'];
      expect(endpoint).toMatchObject({
        port: 'admin',
        scheme: 'https',
        tlsConfig: EXTENDED.serviceMonitor.tlsConfig,
        relabelings: EXTENDED.serviceMonitor.relabelings,
        metricRelabelings: EXTENDED.serviceMonitor.metricRelabelings,
      });
    }
    expect(find(objects, 'ConfigMap').map((c) => c.metadata.name)).toEqual(expect.arrayContaining(['claw-extra', 'claw-extra-text']));
  });
});

test('the PodDisruptionBudget lets a drain evict the one pod, and a pod that is not Ready never blocks it', () => {
  const objects = renderChart([DEFAULTS, valuesFile('pdb', { podDisruptionBudget: { enabled: true } })]).objects;
  expect((one(objects, 'PodDisruptionBudget') as any).spec).toMatchObject({ maxUnavailable: 1, unhealthyPodEvictionPolicy: 'AlwaysAllow' });
});

test("the default oauth2-proxy address is the oauth2-proxy chart's Service: port 80, its root path", () => {
  const objects = renderChart([DEFAULTS, valuesFile('traefik', { traefik: { enabled: true } })]).objects;
  expect((one(objects, 'Middleware') as any).spec.forwardAuth.address).toBe('http://oauth2-proxy/');
  const route = one(objects, 'IngressRoute') as any;
  expect(route.spec.routes.flatMap((r: any) => r.services)).toContainEqual({ name: 'oauth2-proxy', port: 80 });
});

test('GitOps: with hmac.existingSecret two renders are the same, byte for byte, and hold no Secret; without it each holds a new key', () => {
  const existing = valuesFile('gitops', { hmac: { existingSecret: 'claw-hmac' } });
  for (const helm of [3, 4] as const) {
    const [first, second] = [renderChart([DEFAULTS, existing], { helm }), renderChart([DEFAULTS, existing], { helm })];
    expect(second.text).toBe(first.text);
    expect(find(first.objects, 'Secret')).toEqual([]);
    expect(podSpec(first.objects).volumes.find((v: any) => v.name === 'hmac-keys').secret.secretName).toBe('claw-hmac');
  }
  // What install.md warns of: `helm template` cannot see the cluster's Secret.
  const key = () => (one(renderChart([DEFAULTS]).objects, 'Secret') as any).data.k1 as string;
  expect(key()).not.toBe(key());
});
