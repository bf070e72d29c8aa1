// Rendering and schema validation shared by the chart, manifest and image tests: the chart
// is rendered by tools/helm-render (built once, cached in .tools), manifests by
// `kubectl kustomize`, and every object is checked against the Kubernetes / CRD schemas.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CHART = join(ROOT, 'charts/trusted-proxy-sidecar');
const RENDERER = join(ROOT, '.tools/helm-render');
const RENDERER_SRC = join(ROOT, 'tools/helm-render');

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Builds the renderer unless an up-to-date binary is there; safe to race (atomic rename). */
export function ensureRenderer(): string {
  const newest = Math.max(...readdirSync(RENDERER_SRC).map((f) => statSync(join(RENDERER_SRC, f)).mtimeMs));
  if (existsSync(RENDERER) && statSync(RENDERER).mtimeMs >= newest) return RENDERER;
  const tmp = `${RENDERER}.${process.pid}`;
  execFileSync('go', ['build', '-o', tmp, '.'], {
    cwd: RENDERER_SRC,
    env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: join(ROOT, '.tools/go-cache') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  renameSync(tmp, RENDERER);
  return RENDERER;
}

export interface Rendered {
  objects: K8sObject[];
  notes: string;
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
export function renderChart(valueFiles: string[], opts: { name?: string; namespace?: string } = {}): Rendered {
  const args = valueFiles.flatMap((f) => ['-f', f]);
  args.push('-name', opts.name ?? 'claw', '-namespace', opts.namespace ?? 'openclaw', CHART);
  const r = spawnSync(ensureRenderer(), args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr.trim());
  return { objects: parseStream(r.stdout), notes: r.stderr.replace(/^NOTES:\n/, '') };
}

export function kustomize(dir: string): K8sObject[] {
  return parseStream(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
}

const GROUP_PACKAGES: Record<string, string> = {
  'traefik.io': '@kubernetes-models/traefik',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
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
