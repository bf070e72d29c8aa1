// The ingress our users run, each part real and in a test host of its own:
//   ingress: Traefik v3, reading IngressRoutes and Middlewares from a real API server with
//            the RBAC Traefik publishes, serving TLS from a Secret (the test's own CA);
//   auth:    oauth2-proxy, run with the settings docs/install.md gives (OIDC, reverse-proxy,
//            static 202 upstream), answering Traefik's ForwardAuth and the sign-in pages;
//   idp:     an OpenID provider (oidc-provider) with a login form.
// The API server listens on the test network's root address; Services and EndpointSlices
// point at the test hosts, as the endpoint controller would for pods. Cluster DNS names
// resolve through each host's /etc/hosts (see netns.ts).
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { startKubeCluster, type KubeCluster } from '../../harness/kube-cluster.js';
import { startJsonProcess, stopChild, waitForPort } from './front-proxies.js';
import type { Host, TestNetwork } from '../../harness/netns.js';
import type { OidcUser } from '../../harness/oidc-provider.js';
import { flags, oauth2ProxyOidcSettings, oidcClient, providerArgs } from '../../harness/oidc-client.js';
import { signIn as signInWithForm } from '../../harness/oidc-sign-in.js';
import { makeTestCa } from '../../harness/test-ca.js';
import { waitFor } from '../../harness/wait.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = join(ROOT, '.tools', 'bin');

/** The public host of docs/install.md and of the Traefik examples. */
export const PUBLIC_HOST = 'claw.example.com';
export const PUBLIC_ORIGIN = `https://${PUBLIC_HOST}`;
export const IDP_HOST = 'idp.example.com';
export const NAMESPACE = 'openclaw';
/** The test hosts an ingress needs, besides the caller's own. */
export const INGRESS_HOSTS = ['ingress', 'auth', 'idp'] as const;
/** Cluster DNS as the hosts see it: createNetwork(names, { dns: INGRESS_DNS }). */
export const INGRESS_DNS = { [`oauth2-proxy.${NAMESPACE}.svc.cluster.local`]: 'auth', [IDP_HOST]: 'idp' } as const;
const OAUTH2_PROXY_PORT = 80;
const TRAEFIK_API_PORT = 8080;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: any;
}

/** A Service in the namespace, each port backed by a test host's address and port. */
export interface BackendService {
  name: string;
  ports: { name: string; port: number; host: Host; targetPort: number }[];
}

export interface IngressOptions {
  net: TestNetwork;
  dir: string;
  users: Record<string, OidcUser>;
  /** The Traefik objects to apply (a file of manifests/examples/traefik, as users copy it). */
  traefikObjects: K8sObject[];
  /** The Services those objects route to, besides oauth2-proxy's. */
  services: BackendService[];
}

export interface RealIngress {
  kube: KubeCluster;
  ingress: Host;
  /** Flags that make Chromium resolve the public names to the test hosts and trust the test CA. */
  chromiumArgs: string[];
  /** Applies (creates or replaces) Traefik objects and waits until Traefik serves them. */
  apply(objects: K8sObject[]): Promise<void>;
  /** A request to the public host through Traefik, from the root namespace (probes, webhooks). */
  request(path: string, headers?: Record<string, string>, init?: { method?: string; body?: string }): Promise<Answer>;
  /**
   * Signs a user in as a browser would, without one: the public URL, the provider's form,
   * oauth2-proxy's callback. Returns the Cookie header of the session oauth2-proxy set.
   */
  signIn(user: string, password: string): Promise<string>;
  /** oauth2-proxy's command line, for failure messages and checks. */
  oauth2ProxyArgs: string[];
  /** The OpenID provider as a sidecar checking its tokens sees it (identity.token). */
  oidc: { issuer: string; clientId: string; caFile: string };
  output(): string;
  stop(): Promise<void>;
}

/** Reads a multi-document YAML file of Kubernetes objects. */
export function readObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

/**
 * oauth2-proxy's settings as docs/install.md gives them (the `helm install oauth2-proxy`
 * values: `config` and `extraArgs`), as command-line flags.
 */
export function installGuideOauth2ProxyValues(): { config: Record<string, string>; extraArgs: Record<string, string | boolean> } {
  const guide = readFileSync(join(ROOT, 'docs', 'install.md'), 'utf8');
  const block = /helm install oauth2-proxy [^\n]*<<'VALUES'\n([\s\S]*?)\nVALUES\n/.exec(guide);
  if (!block) throw new Error("docs/install.md: no `helm install oauth2-proxy ... <<'VALUES'` block");
  return parse(block[1]!) as { config: Record<string, string>; extraArgs: Record<string, string | boolean> };
}

export async function startRealIngress(options: IngressOptions): Promise<RealIngress> {
  const { net, dir } = options;
  const [ingress, auth, idp] = INGRESS_HOSTS.map((n) => net.host(n)) as [Host, Host, Host];
  const children: ChildProcess[] = [];
  const outputs: (() => string)[] = [];
  let kube: KubeCluster | undefined;
  const stop = async () => {
    for (const child of children.reverse()) await stopChild(child);
    await kube?.stop();
  };
  try {
    const ca = makeTestCa(dir, [PUBLIC_HOST, IDP_HOST]);
    kube = await startKubeCluster({ address: net.rootAddress });
    const cluster = kube;
    const applyYaml = (objects: K8sObject[]) =>
      cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
    cluster.kubectl(['apply', '--server-side', '-f', join(ROOT, '.tools', 'crds', 'traefik.yaml')]);
    cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/ingressroutes.traefik.io', 'crd/middlewares.traefik.io']);
    cluster.kubectl(['apply', '-f', join(ROOT, '.tools', 'traefik-rbac.yaml')]);
    await cluster.call('POST', '/api/v1/namespaces/default/serviceaccounts', {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'traefik-ingress-controller' },
    });
    await cluster.namespace(NAMESPACE);
    const services: BackendService[] = [
      ...options.services,
      { name: 'oauth2-proxy', ports: [{ name: 'http', port: OAUTH2_PROXY_PORT, host: auth, targetPort: OAUTH2_PROXY_PORT }] },
    ];
    applyYaml([
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'claw-tls', namespace: NAMESPACE },
        type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': readFileSync(ca.certFile, 'utf8'), 'tls.key': readFileSync(ca.keyFile, 'utf8') },
      },
      ...services.flatMap(serviceObjects),
    ]);

    // The identity provider, then oauth2-proxy (it reads the provider's discovery at start).
    const client = oidcClient(`https://${IDP_HOST}`, ca, `${PUBLIC_ORIGIN}/oauth2/callback`);
    const provider = await startJsonProcess(idp, process.execPath, providerArgs(dir, client, options.users, { host: idp.address, port: 443 }), 30_000);
    children.push(provider.child);
    outputs.push(() => `oidc-provider: ${provider.output()}`);

    const oauth2ProxyArgs = flags({
      ...installGuideOauth2ProxyValues().extraArgs,
      // What the guide leaves to the user: their client, their provider, a cookie secret.
      ...oauth2ProxyOidcSettings(client),
      // oauth2-proxy's chart listens on 4180 behind Service port 80; here the Service's
      // name resolves to the host itself.
      'http-address': `0.0.0.0:${OAUTH2_PROXY_PORT}`,
    });
    const oauth2Proxy = auth.spawn(join(BIN, 'oauth2-proxy'), oauth2ProxyArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(oauth2Proxy);
    outputs.push(collect('oauth2-proxy', oauth2Proxy));
    await waitForPort(auth.address, OAUTH2_PROXY_PORT, oauth2Proxy, outputs.at(-1)!, 30_000);

    // Traefik, with the ServiceAccount its published RBAC binds.
    const token = await cluster.serviceAccountToken('default', 'traefik-ingress-controller');
    const traefik = ingress.spawn(
      join(BIN, 'traefik'),
      [
        '--global.checkNewVersion=false',
        '--global.sendAnonymousUsage=false',
        '--entryPoints.websecure.address=:443',
        '--providers.kubernetesCRD=true',
        `--providers.kubernetesCRD.endpoint=${cluster.url}`,
        `--providers.kubernetesCRD.token=${token}`,
        `--providers.kubernetesCRD.certAuthFilePath=${cluster.caFile}`,
        '--log.level=INFO',
        '--log.format=json',
        // Its API (on the ingress host's own address), read to learn when an applied change is in force.
        '--api.insecure=true',
        `--entryPoints.traefik.address=${ingress.address}:${TRAEFIK_API_PORT}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(traefik);
    outputs.push(collect('traefik', traefik));

    const caPem = readFileSync(ca.caFile);
    const agent = new https.Agent({ ca: caPem, keepAlive: false });
    const request: RealIngress['request'] = (path, headers = {}, init = {}) =>
      new Promise((done, fail) => {
        const req = https.request(
          { host: ingress.address, port: 443, servername: PUBLIC_HOST, path, method: init.method ?? 'GET', agent, headers: { host: PUBLIC_HOST, ...headers } },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
          },
        );
        req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
        req.on('error', fail);
        req.end(init.body);
      });
    const addressOf: Record<string, string> = { [PUBLIC_HOST]: ingress.address, [IDP_HOST]: idp.address };
    const signIn = (user: string, password: string) =>
      signInWithForm({
        start: `${PUBLIC_ORIGIN}/`,
        user,
        password,
        ca: caPem,
        // Only the test hosts: a redirect anywhere else is a failure, never a request out.
        connectTo: (url) => {
          const address = addressOf[url.hostname];
          if (!address) throw new Error(`sign-in was sent to ${url.href}, which no test host serves`);
          return address;
        },
      });
    const output = () => outputs.map((o) => o()).join('\n');
    const apply = async (objects: K8sObject[]) => {
      applyYaml(objects);
      let last = '';
      await waitFor(
        async () => {
          const raw = await (await fetch(`http://${ingress.address}:${TRAEFIK_API_PORT}/api/rawdata`)).json();
          last = inForce(objects, raw as RawData);
          return last === '';
        },
        'Traefik to serve the applied objects',
        30_000,
        100,
      ).catch((err: Error) => {
        throw new Error(`${err.message}: ${last}\n${output().slice(-4000)}`);
      });
    };
    await apply(options.traefikObjects);
    return {
      kube: cluster,
      ingress,
      chromiumArgs: [
        `--host-resolver-rules=MAP ${PUBLIC_HOST} ${ingress.address}, MAP ${IDP_HOST} ${idp.address}`,
        `--ignore-certificate-errors-spki-list=${ca.serverSpki}`,
      ],
      apply,
      request,
      signIn,
      oauth2ProxyArgs,
      oidc: { issuer: client.issuer, clientId: client.id, caFile: ca.caFile },
      output,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A Service and the EndpointSlice the endpoint controller would make for its pods. */
function serviceObjects(s: BackendService): K8sObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: NAMESPACE },
      spec: { ports: s.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: 'TCP' })) },
    },
    ...s.ports.map((p) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${s.name}-${p.name}`, namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [p.host.address], conditions: { ready: true, serving: true, terminating: false } }],
      ports: [{ name: p.name, port: p.targetPort, protocol: 'TCP' }],
    })),
  ];
}

interface RawData {
  routers?: Record<string, { rule: string; middlewares?: string[]; status: string }>;
  middlewares?: Record<string, Record<string, unknown> & { status: string }>;
}

/**
 * What of the applied objects Traefik does not serve yet ('' when it serves them all): each
 * Middleware with the fields given, each route of each IngressRoute with its middlewares.
 */
function inForce(objects: K8sObject[], raw: RawData): string {
  const ref = (namespace: string, name: string) => `${namespace}-${name}@kubernetescrd`;
  for (const o of objects) {
    const ns = o.metadata.namespace ?? NAMESPACE;
    if (o.kind === 'Middleware') {
      const served = raw.middlewares?.[ref(ns, o.metadata.name)];
      for (const [type, want] of Object.entries(o['spec'] as Record<string, Record<string, unknown>>)) {
        const have = (served?.[type] ?? {}) as Record<string, unknown>;
        for (const [key, value] of Object.entries(want)) {
          // Traefik leaves out false and empty values.
          const empty = value === false || value === '' || (Array.isArray(value) && value.length === 0);
          if (JSON.stringify(have[key]) !== JSON.stringify(value) && !(empty && have[key] === undefined))
            return `middleware ${o.metadata.name}: ${type}.${key}`;
        }
      }
    }
    if (o.kind === 'IngressRoute') {
      for (const route of o['spec'].routes as { match: string; middlewares?: { name: string }[] }[]) {
        const middlewares = route.middlewares?.map((m) => ref(ns, m.name));
        const served = Object.values(raw.routers ?? {}).some(
          (r) => r.rule === route.match && r.status === 'enabled' && JSON.stringify(r.middlewares ?? []) === JSON.stringify(middlewares ?? []),
        );
        if (!served) return `route ${route.match}`;
      }
    }
  }
  return '';
}

function collect(name: string, child: ChildProcess): () => string {
  let text = '';
  const add = (c: Buffer) => (text = (text + c.toString()).slice(-50_000));
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => `${name}: ${text}`;
}
