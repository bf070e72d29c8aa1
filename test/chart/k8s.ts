// Rendering and schema validation shared by the chart, manifest and image tests: the chart
// is rendered by real Helm (built by scripts/install-peers.sh into .tools/bin), manifests by
// `kubectl kustomize`, and every object is checked against the Kubernetes / CRD schemas.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CHART = join(ROOT, 'charts/trusted-proxy-sidecar');
/** The chart's own values files for tests and linting (chart-testing's `ci/` folder). */
export const CI_VALUES = join(CHART, 'ci');
/** Helm 3 and Helm 4, built from the Go module proxy. */
export const HELM = { 3: join(ROOT, '.tools/bin/helm3'), 4: join(ROOT, '.tools/bin/helm4') } as const;
/** The Kubernetes version the API server in the tests runs; Helm renders for it. */
export const KUBE_VERSION = 'v1.35.4';

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** The ci/ values files, by file name. */
export function ciValuesFiles(): string[] {
  return readdirSync(CI_VALUES)
    .filter((f) => f.endsWith('-values.yaml'))
    .sort();
}

export interface Rendered {
  objects: K8sObject[];
  /** Helm's output as it is, `# Source:` comments included. */
  text: string;
}

export function parseStream(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`invalid YAML: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** `helm template` for the chart with the given values files (paths). Throws with Helm's message. */
/** `apiVersions`: group/version/kind the cluster is taken to serve (Helm's --api-versions), as an installed CRD would. */
export function renderChart(
  valueFiles: string[],
  opts: { name?: string; namespace?: string; helm?: 3 | 4; apiVersions?: string[]; kubeVersion?: string } = {},
): Rendered {
  const args = [
    'template',
    opts.name ?? 'claw',
    CHART,
    '--namespace',
    opts.namespace ?? 'openclaw',
    '--kube-version',
    opts.kubeVersion ?? KUBE_VERSION,
    ...valueFiles.flatMap((f) => ['-f', f]),
    ...(opts.apiVersions ?? []).flatMap((v) => ['--api-versions', v]),
  ];
  const r = spawnSync(HELM[opts.helm ?? 3], args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr.trim());
  return { objects: parseStream(r.stdout), text: r.stdout };
}

export function kustomize(dir: string): K8sObject[] {
  return parseStream(execFileSync(join(ROOT, '.tools/bin/kubectl'), ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
}

/**
 * manifests/examples/openclaw-kustomize laid out as install.md expects: this repository's
 * manifests beside a checkout of OpenClaw's (its Kubernetes manifests, in
 * test/fixtures/openclaw-k8s), both copied into `dir`. Returns the copied manifests folder
 * and the example's folder, for `kubectl kustomize` or `apply -k`.
 */
export function layOutOpenClawExample(dir: string): { manifests: string; overlay: string } {
  const manifests = join(dir, 'trusted-proxy-sidecar', 'manifests');
  cpSync(join(ROOT, 'manifests'), manifests, { recursive: true });
  cpSync(join(ROOT, 'test', 'fixtures', 'openclaw-k8s'), join(dir, 'openclaw', 'scripts', 'k8s', 'manifests'), { recursive: true });
  return { manifests, overlay: join(manifests, 'examples', 'openclaw-kustomize') };
}

const GROUP_PACKAGES: Record<string, string> = {
  'traefik.io': '@kubernetes-models/traefik',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
  'gateway.networking.k8s.io': '@kubernetes-models/gateway-api',
  'networking.istio.io': '@kubernetes-models/istio',
};

/**
 * Validates an object against its published schema (kubernetes-models for core types,
 * the Traefik and Prometheus Operator CRD models for theirs). An apiVersion/kind with no
 * model is an error: nothing goes unchecked.
 */
export async function validateObject(obj: K8sObject): Promise<void> {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  const pkg = GROUP_PACKAGES[group!] ?? 'kubernetes-models';
  const path = group ? `${pkg}/${group}/${version}/${obj.kind}` : `${pkg}/${version}/${obj.kind}`;
  let mod: Record<string, new (data: unknown) => { validate(): void }>;
  try {
    mod = (await import(path)) as typeof mod;
  } catch {
    throw new Error(`${obj.kind} ${obj.metadata?.name}: no schema for ${obj.apiVersion} ${obj.kind}`);
  }
  const Model = mod[obj.kind]!;
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`);
  }
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

export function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(objects, kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}
