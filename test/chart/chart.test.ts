// The Helm chart, rendered by real Helm for every values file under ci/ and checked object by
// object: Kubernetes and CRD schemas, then the properties the pod's security rests on.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CHART, CI_VALUES, ROOT, ciValuesFiles, find, one, renderChart, validateObject, type K8sObject } from './k8s.js';
import { metricNamesIn, sidecarMetricNames } from './metric-names.js';
import { COMMAND } from '../support/command.js';
import { makeTestCa } from '../../harness/test-ca.js';
import { loadKeyRing } from '../../src/assertion/keys.js';
import { guardOptions } from '../../src/guard/options.js';
import { isAddressOrCidr, type Config } from '../../src/config/schema.js';
import { parseConfig } from '../../src/config/load.js';

const VALUES = CI_VALUES;
const valuesFiles = ciValuesFiles();
const rendered = new Map(valuesFiles.map((f) => [f, renderChart([join(VALUES, f)])]));
const isTestHook = (o: K8sObject) => (o.metadata as { annotations?: Record<string, string> }).annotations?.['helm.sh/hook'] === 'test';
/** What `helm install` creates; `helm test`'s objects (hooks) are checked on their own. */
const objects = (file: string) => rendered.get(file)!.objects.filter((o) => !isTestHook(o));
const testHooks = (file: string) => rendered.get(file)!.objects.filter(isTestHook);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tps-chart-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Container = {
  name: string;
  ports?: { name: string; containerPort: number }[];
  securityContext?: Record<string, any>;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  volumeMounts?: { name: string; mountPath: string }[];
  livenessProbe?: any;
  readinessProbe?: any;
  startupProbe?: any;
  args?: string[];
};
const podSpec = (objs: K8sObject[]) => (one(objs, 'Deployment') as any).spec.template.spec;
const containers = (objs: K8sObject[]): Container[] => [...(podSpec(objs).initContainers ?? []), ...podSpec(objs).containers];
const container = (objs: K8sObject[], name: string) => containers(objs).find((c) => c.name === name)!;
const sidecarConfigText = (objs: K8sObject[]) => (one(objs, 'ConfigMap', 'claw-trusted-proxy-sidecar-sidecar') as any).data['sidecar.yaml'] as string;

describe.each(valuesFiles)('ci/%s', (file) => {
  test('every object is valid against its Kubernetes or CRD schema and has the standard labels', async () => {
    const objs = objects(file);
    expect(objs.length).toBeGreaterThan(4);
    for (const o of objs) {
      await validateObject(o);
      expect(o.metadata.labels).toMatchObject({
        'app.kubernetes.io/name': 'trusted-proxy-sidecar',
        'app.kubernetes.io/instance': 'claw',
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/version': expect.any(String),
        'helm.sh/chart': expect.stringMatching(/^trusted-proxy-sidecar-/),
      });
    }
  });

  test('the Service exposes only the sidecar ports; the gateway has none and binds loopback', () => {
    const objs = objects(file);
    const ports = (one(objs, 'Service') as any).spec.ports as { name: string; port: number; targetPort: string }[];
    // By number: a native sidecar's named port is found for a Service only from Kubernetes 1.32.
    expect(ports.map((p) => [p.name, p.targetPort]).sort()).toEqual([
      ['admin', 9090],
      ['http', 8080],
    ]);
    expect(ports.map((p) => p.port)).not.toContain(18789);
    expect(container(objs, 'gateway').ports).toBeUndefined();
    const config = parse(sidecarConfigText(objs));
    expect(config.upstream.url).toBe('http://127.0.0.1:18789');
  });

  test('restricted security context and resources on every container', () => {
    const objs = objects(file);
    const pod = podSpec(objs);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.hostNetwork ?? false).toBe(false);
    for (const c of containers(objs)) {
      expect([c.name, c.securityContext]).toEqual([
        c.name,
        expect.objectContaining({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        }),
      ]);
      expect(c.securityContext!.runAsUser).toBeGreaterThan(0);
      expect(c.resources?.requests).toEqual(expect.objectContaining({ cpu: expect.anything(), memory: expect.anything() }));
      expect(c.resources?.limits).toEqual(expect.objectContaining({ memory: expect.anything() }));
    }
  });

  test("probes: the sidecar its own, the gateway through the sidecar admin port by number (a named one is looked up in the gateway's own ports)", () => {
    const objs = objects(file);
    const sidecar = container(objs, 'sidecar');
    expect(sidecar.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(sidecar.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(sidecar.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    const gateway = container(objs, 'gateway');
    expect(gateway.livenessProbe.httpGet).toEqual({ path: '/gateway/healthz', port: 9090 });
    expect(gateway.readinessProbe.httpGet).toEqual({ path: '/gateway/readyz', port: 9090 });
    expect(gateway.startupProbe.httpGet).toEqual({ path: '/gateway/healthz', port: 9090 });
  });

  test('a native sidecar: the last init container, kept running, so it serves before the gateway starts and stops after it', () => {
    const pod = podSpec(objects(file));
    const last = pod.initContainers.at(-1);
    expect([last.name, last.restartPolicy]).toEqual(['sidecar', 'Always']);
    expect(pod.containers.map((c: Container) => c.name)).toEqual(['gateway']);
  });

  test('the generated sidecar config passes check-config', () => {
    const path = join(tmp, `${file}.sidecar.yaml`);
    const config = parse(sidecarConfigText(objects(file)));
    // The TLS files are mounted from a Secret in the pod: here, files of a test CA in their place.
    if (config.listen.certFile) {
      const pki = mkdtempSync(join(tmp, 'pki-'));
      const ca = makeTestCa(pki, ['claw-trusted-proxy-sidecar.openclaw.svc']);
      config.listen = { ...config.listen, certFile: ca.certFile, keyFile: ca.keyFile, ...(config.listen.clientCAFile && { clientCAFile: ca.caFile }) };
    }
    writeFileSync(path, JSON.stringify(config));
    const r = spawnSync(process.execPath, [COMMAND, 'check-config', '--config', path], { encoding: 'utf8' });
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  test('the API token reaches the sidecar only, and only when a discovery source needs it', () => {
    const objs = objects(file);
    const pod = podSpec(objs);
    expect(pod.automountServiceAccountToken).toBe(false);
    for (const sa of find(objs, 'ServiceAccount')) expect((sa as any).automountServiceAccountToken).toBe(false);
    const d = parse(sidecarConfigText(objs)).trust.discovery ?? {};
    const needsApi = (d.pods?.length ?? 0) + (d.endpointSlices?.length ?? 0) > 0 || d.nodePodCIDRs?.enabled || d.nodeAddresses?.enabled;
    const tokenVolumes = (pod.volumes as any[]).filter((v) => v.projected?.sources?.some((s: any) => s.serviceAccountToken));
    expect(tokenVolumes).toHaveLength(needsApi ? 1 : 0);
    for (const c of containers(objs)) {
      const mounts = (c.volumeMounts ?? []).filter((m) => tokenVolumes.some((v) => v.name === m.name));
      expect([c.name, mounts.length]).toEqual([c.name, c.name === 'sidecar' && needsApi ? 1 : 0]);
    }
  });

  test('RBAC is exactly what the enabled discovery sources need', () => {
    const objs = objects(file);
    const d = parse(sidecarConfigText(objs)).trust.discovery ?? {};
    const want = new Map<string, Set<string>>();
    for (const p of d.pods ?? []) want.set(p.namespace, new Set([...(want.get(p.namespace) ?? []), 'pods']));
    for (const e of d.endpointSlices ?? []) want.set(e.namespace, new Set([...(want.get(e.namespace) ?? []), 'endpointslices']));
    const roles = find(objs, 'Role') as any[];
    expect(roles.map((r) => r.metadata.namespace).sort()).toEqual([...want.keys()].sort());
    for (const role of roles) {
      const rules = role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
      for (const rule of rules) expect(rule.verbs).toEqual(['list', 'watch']);
      expect(rules.flatMap((r) => r.resources).sort()).toEqual([...want.get(role.metadata.namespace)!].sort());
      for (const rule of rules) expect(rule.apiGroups).toEqual(rule.resources[0] === 'pods' ? [''] : ['discovery.k8s.io']);
      const binding = one(
        objs.filter((o) => o.metadata.namespace === role.metadata.namespace),
        'RoleBinding',
      ) as any;
      expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: podSpec(objs).serviceAccountName, namespace: 'openclaw' }]);
    }
    const nodes = Boolean(d.nodePodCIDRs?.enabled || d.nodeAddresses?.enabled);
    const clusterRoles = find(objs, 'ClusterRole') as any[];
    expect(clusterRoles).toHaveLength(nodes ? 1 : 0);
    expect(find(objs, 'ClusterRoleBinding')).toHaveLength(nodes ? 1 : 0);
    if (nodes) expect(clusterRoles[0].rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] }]);
  });

  test('NetworkPolicy: data port from the ingress controller, admin port from monitoring, nothing else', () => {
    const np = one(objects(file), 'NetworkPolicy') as any;
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    expect(np.spec.ingress).toEqual([
      {
        ports: [{ port: 8080, protocol: 'TCP' }],
        from: [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'traefik' } },
            podSelector: { matchLabels: { 'app.kubernetes.io/name': 'traefik' } },
          },
        ],
      },
      {
        ports: [{ port: 9090, protocol: 'TCP' }],
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      },
    ]);
  });
});

test('the checksum annotation follows the sidecar config', () => {
  const checksum = (objs: K8sObject[]) => (one(objs, 'Deployment') as any).spec.template.metadata.annotations['checksum/sidecar-config'];
  const a = objects('defaults-values.yaml');
  const configMapDoc = renderChart([join(VALUES, 'defaults-values.yaml')])
    .text.split(/^---\n/m)
    .find((d) => d.startsWith('# Source: trusted-proxy-sidecar/templates/configmap.yaml'))!
    .replace(/^# Source: .*\n/, '');
  // Less the active key, which the sidecar reloads live: rotating it does not roll the pod.
  expect(checksum(a)).toBe(
    createHash('sha256')
      .update(configMapDoc.replace(/activeKeyId: .*/g, ''))
      .digest('hex'),
  );
  expect(checksum(objects('all-optional-values.yaml'))).not.toBe(checksum(a));
  const rotated = join(tmp, 'rotated.yaml');
  writeFileSync(rotated, 'hmac: { activeKeyId: k2 }\n');
  const after = renderChart([join(VALUES, 'defaults-values.yaml'), rotated]).objects;
  expect(parse((one(after, 'ConfigMap') as any).data['sidecar.yaml']).assertion.activeKeyId).toBe('k2');
  expect(checksum(after)).toBe(checksum(a));
});

test('the HMAC key Secret: generated with 48 random bytes unless an existing Secret is named', () => {
  const secret = one(objects('defaults-values.yaml'), 'Secret') as any;
  expect(secret.metadata.name).toBe('claw-trusted-proxy-sidecar-hmac');
  expect(Buffer.from(secret.data.k1, 'base64')).toHaveLength(48);
  expect(secret.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
  const again = one(renderChart([join(VALUES, 'defaults-values.yaml')]).objects, 'Secret') as any;
  expect(again.data.k1).not.toBe(secret.data.k1);
  // The generated key is named active, so adding k2 (a rotation's first step) keeps signing.
  expect(parse(sidecarConfigText(objects('defaults-values.yaml'))).assertion).toMatchObject({ activeKeyId: 'k1' });

  const objs = objects('existing-secret-values.yaml');
  expect(find(objs, 'Secret')).toHaveLength(0);
  const keysVolume = (podSpec(objs).volumes as any[]).find((v) => v.name === 'hmac-keys');
  expect(keysVolume.secret.secretName).toBe('claw-hmac-keys');
  expect(parse(sidecarConfigText(objs)).assertion).toMatchObject({ activeKeyId: 'k2', keysDir: '/etc/trusted-proxy-sidecar/keys' });
});

test.each([
  ['eddsa-values.yaml', 'EdDSA', 'claw-trusted-proxy-sidecar-hmac-eddsa', '/etc/trusted-proxy-sidecar/jwks/jwks.json'],
  ['es256-values.yaml', 'ES256', 'claw-trusted-proxy-sidecar-hmac-es256', '/var/run/claw-keys/public.json'],
] as const)(
  'a key pair (%s): a Secret of its own whose key the sidecar loads, and the JWK Set on a volume the gateway reads',
  (file, algorithm, secretName, jwksPath) => {
    const objs = objects(file);
    const secret = one(objs, 'Secret') as any;
    expect(secret.metadata.name).toBe(secretName);
    const keys = mkdtempSync(join(tmp, 'keys-'));
    writeFileSync(join(keys, 'k1'), Buffer.from(secret.data.k1, 'base64'));
    expect(loadKeyRing(keys, 'k1', algorithm)).toMatchObject({ activeKeyId: 'k1', problems: [] });
    expect(parse(sidecarConfigText(objs)).assertion).toMatchObject({ algorithm, activeKeyId: 'k1', jwksFile: jwksPath });
    const dir = jwksPath.slice(0, jwksPath.lastIndexOf('/'));
    expect(container(objs, 'sidecar').volumeMounts).toContainEqual({ name: 'jwks', mountPath: dir });
    expect(container(objs, 'gateway').volumeMounts).toContainEqual({ name: 'jwks', mountPath: dir, readOnly: true });
    expect((podSpec(objs).volumes as any[]).find((v) => v.name === 'jwks')).toEqual({ name: 'jwks', emptyDir: {} });
    // HS256 (the default) has nothing public to share.
    expect(
      containers(objects('defaults-values.yaml'))
        .flatMap((c) => c.volumeMounts ?? [])
        .map((m) => m.name),
    ).not.toContain('jwks');
  },
);

test.each([
  // guard-values.yaml gives OpenClaw's hooks a machine route: the guard is told it as the sidecar's config has it.
  [
    'guard-values.yaml',
    {
      TRUSTED_PROXY_GUARD_KEYS_DIR: '/etc/trusted-proxy-sidecar/keys',
      TRUSTED_PROXY_GUARD_MACHINE_ROUTES: JSON.stringify([{ match: 'prefix', methods: ['POST'], name: 'hooks', path: '/hooks' }]),
      TRUSTED_PROXY_GUARD_LOCAL_DIRECT: 'true',
    },
    'hmac-keys',
  ],
  ['es256-values.yaml', { TRUSTED_PROXY_GUARD_JWKS: '/var/run/claw-keys/public.json' }, 'jwks'],
] as const)(
  'the guard (%s): node --import of the file the init step copies, with settings the guard accepts and the keys it names',
  (file, keys, keysVolume) => {
    const objs = objects(file);
    const gateway = container(objs, 'gateway') as Container & { command: string[]; env: { name: string; value: string }[] };
    expect(gateway.command).toEqual(['node', '--import', '/opt/trusted-proxy-sidecar/guard/guard.js', 'openclaw.mjs', 'gateway', '--allow-unconfigured']);
    const install = container(objs, 'guard-install') as Container & { command: string[] };
    expect(install.command.join(' ')).toContain("copyFileSync('/app/dist/guard.js', '/opt/trusted-proxy-sidecar/guard/guard.js')");
    expect(install.volumeMounts).toEqual([{ name: 'guard', mountPath: '/opt/trusted-proxy-sidecar/guard' }]);
    expect(gateway.volumeMounts).toContainEqual({ name: 'guard', mountPath: '/opt/trusted-proxy-sidecar/guard', readOnly: true });
    const keysPath = Object.values(keys)[0]!;
    if ('TRUSTED_PROXY_GUARD_MACHINE_ROUTES' in keys) {
      const config = parse(sidecarConfigText(objs)) as { routes: { name: string; mode: string }[] };
      expect(config.routes.filter((r) => r.mode === 'machine').map((r) => r.name)).toEqual(['hooks']);
    }
    const mounted = gateway.volumeMounts!.find((m) => m.name === keysVolume)!;
    expect(keysPath.startsWith(mounted.mountPath)).toBe(true);
    const env = Object.fromEntries(gateway.env.filter((e) => e.name.startsWith('TRUSTED_PROXY_GUARD_')).map((e) => [e.name, e.value]));
    expect(env).toEqual({
      TRUSTED_PROXY_GUARD_PORTS: '18789',
      ...keys,
      TRUSTED_PROXY_GUARD_OPEN_PATHS: '/healthz,/readyz',
      TRUSTED_PROXY_GUARD_USER_HEADER: 'x-forwarded-user',
      TRUSTED_PROXY_GUARD_SCOPES_HEADER: 'x-openclaw-scopes',
    });
    expect(guardOptions(env)).toMatchObject({ ok: true });
    // Off by default: the image's own command, no guard volume.
    expect(container(objects('defaults-values.yaml'), 'gateway')).not.toHaveProperty('command');
    expect(containers(objects('defaults-values.yaml')).map((c) => c.name)).not.toContain('guard-install');
  },
);

test("mutual TLS (ci/mtls-values.yaml): the Secret mounted where the config reads it, Traefik's route over HTTPS with a ServersTransport that presents its certificate", () => {
  const objs = objects('mtls-values.yaml');
  expect(parse(sidecarConfigText(objs)).listen).toMatchObject({
    certFile: '/etc/trusted-proxy-sidecar/tls/tls.crt',
    keyFile: '/etc/trusted-proxy-sidecar/tls/tls.key',
    clientCAFile: '/etc/trusted-proxy-sidecar/tls/ca.crt',
  });
  expect(container(objs, 'sidecar').volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/trusted-proxy-sidecar/tls', readOnly: true });
  const volume = (name: string) => (podSpec(objs).volumes as any[]).find((v) => v.name === name);
  // Read only by the pod's users, as the key Secret.
  expect(volume('tls')).toEqual({ name: 'tls', secret: { secretName: 'claw-sidecar-tls', defaultMode: volume('hmac-keys').secret.defaultMode } });
  const route = one(objs, 'IngressRoute') as any;
  expect(route.spec.routes[1].services).toEqual([
    { name: 'claw-trusted-proxy-sidecar', port: 'http', scheme: 'https', serversTransport: 'claw-trusted-proxy-sidecar' },
  ]);
  expect((one(objs, 'ServersTransport') as any).spec).toEqual({
    serverName: 'claw-trusted-proxy-sidecar.openclaw.svc',
    rootCAs: [{ secret: 'claw-sidecar-tls' }],
    certificatesSecrets: ['traefik-client-tls'],
  });
  // Without sidecar.tls: plain HTTP, no ServersTransport.
  expect(find(objects('all-optional-values.yaml'), 'ServersTransport')).toHaveLength(0);
});

test('a service mesh: the data port kept out of its inbound capture, and with Istio installed a DestinationRule that has its clients send plain text there', async () => {
  const DEFAULTS = 'defaults-values.yaml';
  const pod = (one(objects(DEFAULTS), 'Deployment') as any).spec.template.metadata.annotations;
  expect(pod).toMatchObject({ 'traffic.sidecar.istio.io/excludeInboundPorts': '8080', 'config.linkerd.io/skip-inbound-ports': '8080' });
  expect(find(objects(DEFAULTS), 'DestinationRule')).toHaveLength(0);
  const withIstio = renderChart([join(VALUES, DEFAULTS)], { apiVersions: ['networking.istio.io/v1/DestinationRule'] }).objects;
  const rule = one(withIstio, 'DestinationRule');
  await validateObject(rule);
  const service = one(withIstio, 'Service').metadata.name;
  expect((rule as any).spec).toEqual({ host: service, trafficPolicy: { portLevelSettings: [{ port: { number: 8080 }, tls: { mode: 'DISABLE' } }] } });
  const values = join(tmp, 'no-mesh-exclusion.yaml');
  writeFileSync(values, 'mesh: { excludeDataPort: false }\n');
  const off = renderChart([join(VALUES, DEFAULTS), values], { apiVersions: ['networking.istio.io/v1/DestinationRule'] }).objects;
  expect((one(off, 'Deployment') as any).spec.template.metadata.annotations).not.toHaveProperty(['traffic.sidecar.istio.io/excludeInboundPorts']);
  expect(find(off, 'DestinationRule')).toHaveLength(0);
});

test('sidecar.native: false puts the sidecar beside the gateway; before Kubernetes 1.29 native is refused with the way out', () => {
  const values = join(tmp, 'not-native.yaml');
  writeFileSync(values, 'sidecar: { native: false }\n');
  const spec = podSpec(renderChart([join(VALUES, 'defaults-values.yaml'), values]).objects);
  expect(spec.containers.map((c: Container) => c.name)).toEqual(['gateway', 'sidecar']);
  expect(spec.containers[1].startupProbe).toBeUndefined();
  expect(() => renderChart([join(VALUES, 'defaults-values.yaml')], { kubeVersion: 'v1.28.9' })).toThrow(
    /sidecar\.native needs Kubernetes 1\.29 or later \(this cluster: v1\.28\.9\): set sidecar\.native: false/,
  );
  expect(podSpec(renderChart([join(VALUES, 'defaults-values.yaml'), values], { kubeVersion: 'v1.28.9' }).objects).containers).toHaveLength(2);
});

test('a stopping pod: the sidecar drains (its preStop hook, native or not) while the gateway sleeps longer; a sleep within the drain is refused', () => {
  const drain = ['/nodejs/bin/node', '/app/dist/sidecar.js', 'drain', '--config', '/etc/trusted-proxy-sidecar/config/sidecar.yaml'];
  const native = podSpec(renderChart([join(VALUES, 'defaults-values.yaml')]).objects);
  expect(native.initContainers.find((c: Container) => c.name === 'sidecar').lifecycle).toEqual({ preStop: { exec: { command: drain } } });
  expect(native.containers[0].lifecycle).toEqual({ preStop: { sleep: { seconds: 7 } } });
  const values = join(tmp, 'not-native-drain.yaml');
  writeFileSync(values, 'sidecar: { native: false }\n');
  expect(podSpec(renderChart([join(VALUES, 'defaults-values.yaml'), values]).objects).containers[1].lifecycle).toEqual({
    preStop: { exec: { command: drain } },
  });
  // The sleep action exists from Kubernetes 1.30.
  expect(podSpec(renderChart([join(VALUES, 'defaults-values.yaml'), values], { kubeVersion: 'v1.29.4' }).objects).containers[0].lifecycle).toBeUndefined();
  const short = join(tmp, 'short-sleep.yaml');
  // The chart's idea of the drain is the sidecar's default: a sleep of exactly that is refused.
  const drainSeconds = (parseConfig('{}') as { ok: true; config: Config }).config.listen.drainSeconds;
  writeFileSync(short, `gateway: { preStopSleepSeconds: ${drainSeconds} }\n`);
  expect(() => renderChart([join(VALUES, 'defaults-values.yaml'), short])).toThrow(
    new RegExp(`gateway\\.preStopSleepSeconds \\(${drainSeconds}\\) must exceed sidecar\\.config\\.listen\\.drainSeconds \\(${drainSeconds}\\)`),
  );
});

test("helm test: a pod that is not the proxy, with a token that may only list the Service's EndpointSlices, and the restricted security context", async () => {
  const hooks = testHooks('defaults-values.yaml');
  expect(hooks.map((o) => o.kind).sort()).toEqual(['Pod', 'Role', 'RoleBinding', 'ServiceAccount']);
  for (const o of hooks) await validateObject(o);
  expect((one(hooks, 'Role') as any).rules).toEqual([{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list'] }]);
  const pod = (one(hooks, 'Pod') as any).spec;
  expect(pod.containers[0].securityContext).toMatchObject({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  // Its checks are the script's; the node suite (test/node/) runs it against a real install.
  expect(pod.containers[0].command.slice(0, 2)).toEqual(['/nodejs/bin/node', '-e']);
});

test('the guard needs a command that starts with node', () => {
  const values = join(tmp, 'guard-sh.yaml');
  writeFileSync(values, 'publicUrl: https://claw.example.com\ngateway: { guard: { enabled: true, command: [sh, -c, "node openclaw.mjs gateway"] } }\n');
  expect(() => renderChart([values])).toThrow(/gateway.guard.command must start with node/);
});

test('values.schema.json refuses unknown keys, bad types and a missing public URL', () => {
  const bad = join(tmp, 'bad.yaml');
  writeFileSync(bad, 'publicUrl: https://claw.example.com\ngateway: { port: "x", imag: {} }\nsidecar: { config: { upstream: { url: http://evil } } }\n');
  const problems = (() => {
    try {
      renderChart([bad]);
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  })();
  // Helm lists every violation of values.schema.json at once.
  expect(problems).toContain("at '/sidecar/config/upstream': additional properties 'url' not allowed");
  expect(problems).toContain("at '/gateway/port': got string, want integer");
  expect(problems).toContain("at '/gateway': additional properties 'imag' not allowed");
  const none = join(tmp, 'none.yaml');
  writeFileSync(none, '{}\n');
  expect(() => renderChart([none])).toThrow(/publicUrl/);
  writeFileSync(none, 'publicUrl: https://claw.example.com/path\n');
  expect(() => renderChart([none])).toThrow(/publicUrl/);
});

test("sidecar.config in values.schema.json is the sidecar's config schema (scripts/chart-schema.mjs), so Helm 3 and 4 refuse at install what the sidecar would at start", () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'chart-schema.mjs'), '--check'], { encoding: 'utf8' });
  expect([r.status, r.stderr]).toEqual([0, '']);
  const typo = join(tmp, 'config-typo.yaml');
  writeFileSync(
    typo,
    'publicUrl: https://claw.example.com\nsidecar: { config: { trust: { cidrz: [], cidrs: [10.0.0.0/33, 10.1.0.0/16, "fd00::/8"] }, identity: { token: { audience: [x] } }, listen: { port: 1 } } }\n',
  );
  for (const helm of [3, 4] as const) {
    const message = (() => {
      try {
        renderChart([typo], { helm });
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    expect(message).toContain("at '/sidecar/config/trust': additional properties 'cidrz' not allowed");
    expect(message).toContain("at '/sidecar/config/trust/cidrs/0': '10.0.0.0/33' does not match pattern");
    expect(message).not.toContain('/cidrs/1');
    expect(message).not.toContain('/cidrs/2');
    expect(message).toContain("at '/sidecar/config/identity/token': additional properties 'audience' not allowed");
    // What the chart sets itself (here the port, from sidecar.ports.http) cannot be given twice.
    expect(message).toContain("at '/sidecar/config/listen': additional properties 'port' not allowed");
  }
});

test("the schema's CIDR pattern agrees with the sidecar on dotted quads and their prefixes", () => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
  const pattern = new RegExp(schema.properties.sidecar.properties.config.properties.trust.properties.cidrs.items.pattern);
  const octets = ['0', '1', '9', '10', '99', '100', '199', '200', '249', '250', '255', '256', '300', '010', '00'];
  let compared = 0;
  for (const a of octets)
    for (const b of ['0', '255', '256'])
      for (const prefix of ['', '/0', '/8', '/32', '/33', '/08', '/008', '/-1']) {
        const value = `${a}.${b}.0.1${prefix}`;
        expect([value, pattern.test(value)]).toEqual([value, isAddressOrCidr(value)]);
        compared++;
      }
  expect(compared).toBe(octets.length * 3 * 8);
});

test('optional objects are off by default and all render when enabled', () => {
  const optional = ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'Middleware', 'IngressRoute', 'Ingress', 'HTTPRoute', 'PodDisruptionBudget'];
  for (const kind of optional) expect([kind, find(objects('defaults-values.yaml'), kind).length]).toEqual([kind, 0]);
  for (const kind of optional) expect([kind, find(objects('all-optional-values.yaml'), kind).length]).toEqual([kind, 1]);
  expect(find(objects('defaults-values.yaml'), 'ConfigMap')).toHaveLength(1);
  expect(find(objects('all-optional-values.yaml'), 'ConfigMap')).toHaveLength(2);
});

test('HTTPRoute: the public host to the sidecar Service only, with the filters given; pod scheduling values reach the pod', () => {
  const objs = objects('all-optional-values.yaml');
  const route = one(objs, 'HTTPRoute') as any;
  expect(route.spec.hostnames).toEqual(['claw.example.com']);
  expect(route.spec.parentRefs).toEqual([{ name: 'public', namespace: 'gateway-system', sectionName: 'https' }]);
  expect(route.spec.rules).toEqual([
    {
      matches: [{ path: { type: 'PathPrefix', value: '/' } }],
      filters: [{ type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name: 'claw-trusted-proxy-sidecar-oauth2-proxy' } }],
      backendRefs: [{ name: one(objs, 'Service').metadata.name, port: 8080 }],
    },
  ]);
  expect(podSpec(objs)).toMatchObject({
    priorityClassName: 'high-priority',
    topologySpreadConstraints: [expect.objectContaining({ topologyKey: 'topology.kubernetes.io/zone' })],
  });
  expect(podSpec(objects('defaults-values.yaml'))).not.toHaveProperty('priorityClassName');
});

test('Chart.yaml: what Artifact Hub and reviewers read, with the images the chart runs', () => {
  const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'));
  expect(chart).toMatchObject({
    home: expect.stringMatching(/^https:/),
    sources: [expect.stringMatching(/^https:/)],
    icon: expect.stringMatching(/^https:.*icon\.svg$/),
    maintainers: [expect.objectContaining({ name: expect.any(String) })],
  });
  expect(readFileSync(join(CHART, 'icon.svg'), 'utf8')).toContain('<svg');
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8'));
  const images = parse(chart.annotations['artifacthub.io/images']).map((i: { image: string }) => i.image);
  expect(images).toEqual([`${values.sidecar.image.repository}:${chart.appVersion}`, `${values.gateway.image.repository}:${values.gateway.image.tag}`]);
  expect(chart.annotations['artifacthub.io/license']).toBe(JSON.parse(readFileSync(join(CHART, '..', '..', 'package.json'), 'utf8')).license);
});

test('Traefik: oauth2-proxy ForwardAuth first, then the sidecar Service as the only backend', () => {
  const objs = objects('all-optional-values.yaml');
  const mw = one(objs, 'Middleware') as any;
  expect(mw.spec.forwardAuth).toEqual({
    address: 'http://oauth2-proxy.openclaw.svc.cluster.local:4180/',
    trustForwardHeader: false,
    authResponseHeaders: ['X-Auth-Request-Email', 'X-Auth-Request-User', 'X-Auth-Request-Groups'],
    maxResponseBodySize: 65536,
  });
  const route = one(objs, 'IngressRoute') as any;
  const [signIn, app] = route.spec.routes;
  expect(signIn.match).toBe('Host(`claw.example.com`) && PathPrefix(`/oauth2/`)');
  expect(signIn.services).toEqual([{ name: 'oauth2-proxy', port: 4180 }]);
  expect(app.match).toBe('Host(`claw.example.com`)');
  expect(app.middlewares).toEqual([{ name: mw.metadata.name }]);
  expect(app.services).toEqual([{ name: one(objs, 'Service').metadata.name, port: 'http' }]);
  expect(route.spec.tls).toEqual({ certResolver: 'letsencrypt' });
  const ingress = one(objs, 'Ingress') as any;
  expect(ingress.spec.rules[0].http.paths[0].backend.service).toEqual({ name: one(objs, 'Service').metadata.name, port: { name: 'http' } });
});

test('alert rules pass promtool and use only metrics the sidecar exports (or kube-state-metrics)', () => {
  const rule = one(objects('all-optional-values.yaml'), 'PrometheusRule') as any;
  const file = join(tmp, 'rules.yaml');
  writeFileSync(file, JSON.stringify({ groups: rule.spec.groups }));
  const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  expect([r.status, r.stderr]).toEqual([0, '']);
  const alerts = rule.spec.groups[0].rules.map((x: any) => x.alert);
  expect(alerts).toEqual(
    expect.arrayContaining([
      'TrustedProxyRefusalSpike',
      'TrustedProxyDiscoveryStale',
      'TrustedProxyUpstreamErrors',
      'TrustedProxyConnectionsDropped',
      'TrustedProxyAssertionKeyOld',
    ]),
  );
  const known = sidecarMetricNames();
  const used = metricNamesIn(rule.spec.groups[0].rules.map((x: any) => x.expr).join('\n'));
  expect(used.length).toBeGreaterThan(3);
  for (const name of used) expect([name, known.has(name)]).toEqual([name, true]);
  expect(rule.spec.groups[0].rules.find((x: any) => x.alert === 'TrustedProxyAssertionKeyOld').expr).toContain(`> ${30 * 86400}`);
});

test('the Grafana dashboard is valid JSON over the sidecar metrics', () => {
  const cm = find(objects('all-optional-values.yaml'), 'ConfigMap').find((c) => c.metadata.name.endsWith('-dashboard')) as any;
  expect(cm.metadata.namespace).toBe('monitoring');
  expect(cm.metadata.labels.grafana_dashboard).toBe('1');
  const dashboard = JSON.parse(cm.data['trusted-proxy-sidecar.json']);
  const exprs = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr)).join('\n');
  const known = sidecarMetricNames();
  for (const name of metricNamesIn(exprs)) expect([name, known.has(name)]).toEqual([name, true]);
  for (const needed of ['decisions_total', 'decision_duration_seconds', 'websockets_open', 'discovery_synced', 'upstream_errors_total']) {
    expect(exprs).toContain(`trusted_proxy_${needed}`);
  }
});

test("the chart README's values table is the one values.yaml's comments generate, every value in it", () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'chart-readme.mjs'), '--check'], { encoding: 'utf8' });
  expect([r.status, r.stderr]).toEqual([0, '']);
  const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
  const rows = [...readme.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
  // Every top-level value has its row or rows below it.
  for (const key of Object.keys(values)) expect([key, rows.some((r) => r === key || r.startsWith(`${key}.`))]).toEqual([key, true]);
  expect(rows.length).toBeGreaterThan(60);
});
