// The plain manifests, built by `kubectl kustomize`: the base holds the chart's objects,
// the component adds only the sidecar to a user's gateway Deployment, and with the OpenClaw
// component it fits OpenClaw's own manifests.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { find, HELM, kustomize, layOutOpenClawExample, one, ROOT, validateObject, type K8sObject } from './k8s.js';
import { COMMAND } from '../support/command.js';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';

const base = kustomize(join(ROOT, 'manifests/base'));
const withComponent = kustomize(join(import.meta.dirname, 'fixtures/component'));
const deployment = (objs: K8sObject[], name: string) => one(objs, 'Deployment', name) as any;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tps-manifests-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

test('every object of the base and of the component is valid', async () => {
  expect(base.length).toBeGreaterThan(5);
  for (const o of [...base, ...withComponent]) await validateObject(o);
});

test('the base and the Traefik examples are the chart rendered from their values (regenerate with manifests/generate.sh)', () => {
  const copy = join(tmp, 'regenerated');
  const generated = ['manifests/base/trusted-proxy-sidecar.yaml', 'manifests/examples/traefik/inline.yaml', 'manifests/examples/traefik/mtls.yaml'];
  execFileSync('mkdir', ['-p', join(copy, 'manifests/base'), join(copy, 'manifests/examples/traefik'), join(copy, '.tools/bin'), join(copy, 'charts')]);
  execFileSync('cp', ['-r', join(ROOT, 'charts/trusted-proxy-sidecar'), join(copy, 'charts/')]);
  execFileSync('cp', [join(ROOT, 'manifests/generate.sh'), join(copy, 'manifests/')]);
  execFileSync('cp', [join(ROOT, 'manifests/base/values.yaml'), join(copy, 'manifests/base/')]);
  execFileSync('cp', [
    join(ROOT, 'manifests/examples/traefik/values.yaml'),
    join(ROOT, 'manifests/examples/traefik/mtls-values.yaml'),
    join(copy, 'manifests/examples/traefik/'),
  ]);
  execFileSync('ln', ['-s', HELM[3], join(copy, '.tools/bin/helm3')]);
  execFileSync('ln', ['-s', join(ROOT, 'node_modules'), join(copy, 'node_modules')]);
  execFileSync(join(copy, 'manifests/generate.sh'));
  for (const file of generated) {
    const fresh = readFileSync(join(copy, file), 'utf8');
    expect(fresh).toBe(readFileSync(join(ROOT, file), 'utf8'));
    expect(fresh).not.toMatch(/managed-by|helm\.sh/);
  }
});

test('the base: no Secret in git, gateway port not in the Service, token only for the sidecar', () => {
  expect(find(base, 'Secret')).toHaveLength(0);
  const d = deployment(base, 'openclaw');
  expect(d.spec.template.spec.volumes.find((v: any) => v.name === 'hmac-keys').secret.secretName).toBe('openclaw-hmac');
  const ports = (one(base, 'Service') as any).spec.ports.map((p: any) => p.targetPort);
  expect(ports.sort()).toEqual([8080, 9090]);
  expect(d.spec.template.spec.automountServiceAccountToken).toBe(false);
  expect(one(base, 'Role').metadata.namespace).toBe('traefik');
  expect(find(base, 'ClusterRole')).toHaveLength(0);
});

test('the component adds only the sidecar, to the annotated Deployment only, with a valid config', () => {
  const gw = deployment(withComponent, 'my-gateway');
  expect(gw.spec.template.spec.containers.map((c: any) => c.name)).toEqual(['gateway']);
  const gateway = gw.spec.template.spec.containers.find((c: any) => c.name === 'gateway');
  expect(gateway).toEqual({ name: 'gateway', image: 'ghcr.io/openclaw/openclaw:2026.9.6', env: [{ name: 'OPENCLAW_GATEWAY_PORT', value: '18789' }] });
  // A native sidecar: an init container that keeps running, serving before the gateway starts.
  expect(gw.spec.template.spec.initContainers.map((c: any) => [c.name, c.restartPolicy])).toEqual([['trusted-proxy-sidecar', 'Always']]);
  const sidecar = gw.spec.template.spec.initContainers.find((c: any) => c.name === 'trusted-proxy-sidecar');
  expect(sidecar.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'tps-admin' });
  expect(sidecar.securityContext).toMatchObject({
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  expect(deployment(withComponent, 'unrelated').spec.template.spec.containers.map((c: any) => c.name)).toEqual(['app']);
  // The data port out of a mesh's inbound capture, as the chart does.
  expect(gw.spec.template.metadata.annotations).toMatchObject({
    'traffic.sidecar.istio.io/excludeInboundPorts': '8080',
    'config.linkerd.io/skip-inbound-ports': '8080',
  });
  expect(deployment(withComponent, 'unrelated').spec.template.metadata?.annotations).toBeUndefined();

  const cm = one(withComponent, 'ConfigMap') as any;
  const volume = gw.spec.template.spec.volumes.find((v: any) => v.name === 'tps-config');
  expect(volume.configMap.name).toBe(cm.metadata.name);
  expect(cm.metadata.name).toMatch(/^trusted-proxy-sidecar-[a-z0-9]{10}$/);
  const path = join(tmp, 'component-sidecar.yaml');
  writeFileSync(path, cm.data['sidecar.yaml']);
  const r = spawnSync(process.execPath, [COMMAND, 'check-config', '--config', path], { encoding: 'utf8' });
  expect([r.status, r.stderr]).toEqual([0, '']);
  expect(parse(cm.data['sidecar.yaml']).trust.cidrs).toEqual([]);
});

test("OpenClaw's own manifests with both components: valid, the config step after OpenClaw's seeding, the Service at the sidecar, the gateway outliving the drain", async () => {
  const objects = kustomize(layOutOpenClawExample(join(tmp, 'openclaw-example')).overlay);
  for (const o of objects) await validateObject(o);
  expect(objects.every((o) => o.metadata.namespace === 'openclaw')).toBe(true);
  const spec = deployment(objects, 'openclaw').spec.template.spec;
  // The sidecar first (native), then OpenClaw's seeding step, then the merge of the trust keys.
  expect(spec.initContainers.map((c: any) => c.name)).toEqual(['trusted-proxy-sidecar', 'init-config', 'trusted-proxy-gateway-config']);
  const step = spec.initContainers[2];
  expect(step.volumeMounts.map((m: any) => [m.name, m.mountPath])).toEqual([
    ['openclaw-home', '/home/node/.openclaw'],
    ['tps-config', '/etc/trusted-proxy-sidecar/config'],
  ]);
  expect(step.securityContext.runAsUser).toBe(spec.containers[0].securityContext.runAsUser);
  const drainSeconds = (parseConfig('{}') as { ok: true; config: Config }).config.listen.drainSeconds;
  expect(spec.containers[0].lifecycle.preStop.sleep.seconds).toBeGreaterThan(drainSeconds);
  expect(spec.initContainers[0].lifecycle.preStop.exec.command).toContain('drain');
  // OpenClaw refuses a shared token beside trusted-proxy auth; its other variables stay.
  const env = spec.containers[0].env.map((e: any) => e.name);
  expect(env).not.toContain('OPENCLAW_GATEWAY_TOKEN');
  expect(env).toEqual(expect.arrayContaining(['HOME', 'OPENCLAW_CONFIG_DIR', 'NODE_ENV']));
  expect((one(objects, 'Service', 'openclaw') as any).spec.ports).toEqual([{ name: 'gateway', port: 18789, targetPort: 8080, protocol: 'TCP' }]);
});
