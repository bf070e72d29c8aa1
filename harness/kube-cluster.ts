// A real Kubernetes API server for tests: kube-apiserver (built by scripts/install-peers.sh)
// on loopback, with kine on SQLite as its storage, its own CA and serving certificate, a
// service-account signing key, a static admin token and the RBAC authorizer. By default no
// kubelet and no controllers run: tests create objects and set pod status through the API,
// as a kubelet would. With `controlPlane`, kube-controller-manager and kube-scheduler run
// too, for a real node (kube-node.ts). Ready in seconds; everything it made is removed by stop().
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './ports.js';
import { makeCa, signCertificate } from './test-ca.js';
import { waitFor } from './wait.js';

// The checkout's root: jest and the benchmark both run from it (and this file is compiled
// elsewhere for the benchmark, so its own location says nothing).
export const KUBE_BIN = resolve(process.cwd(), '.tools/bin');
export const KUBECTL = join(KUBE_BIN, 'kubectl');

export interface KubeCluster {
  /** https://ADDRESS:PORT (127.0.0.1 unless the options say otherwise) */
  url: string;
  port: number;
  dir: string;
  caFile: string;
  /** A kubeconfig with the admin token (system:masters), for kubectl and Helm. */
  kubeconfig: string;
  /** A JSON request as the admin; resolves with status and parsed body, never throws on a status. */
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: any }>;
  /** As request(), with another bearer token (a ServiceAccount's). */
  requestAs(token: string, method: string, path: string): Promise<{ status: number; body: any }>;
  /** As request(), but throws unless the status is 2xx; returns the body. */
  call(method: string, path: string, body?: unknown, contentType?: string): Promise<any>;
  /** kubectl with the admin kubeconfig; returns stdout, throws with stderr. */
  kubectl(args: string[], input?: string): string;
  /** A token for a ServiceAccount (TokenRequest, as a projected volume gets it). */
  serviceAccountToken(namespace: string, name: string, seconds?: number): Promise<string>;
  /**
   * The sidecar's in-cluster view of a ServiceAccount: a folder with ca.crt and token, and
   * the environment the sidecar reads (KUBERNETES_SERVICE_HOST/PORT, TPS_SERVICEACCOUNT_DIR).
   */
  inCluster(namespace: string, serviceAccount: string): Promise<Record<string, string>>;
  /** Creates a namespace if it is not there. */
  namespace(name: string): Promise<void>;
  /** The API server's and its storage's process ids (for their CPU and memory). */
  pids: number[];
  stop(): Promise<void>;
}

export interface ClusterOptions {
  /** How often the API server compacts its storage (a compacted revision makes old watches 410). */
  compactionSeconds?: number;
  /** false: watches are served from storage, so a compacted resourceVersion is really gone. */
  watchCache?: boolean;
  /** Where the API server listens (default 127.0.0.1): a test network's root address makes it reachable from that network's hosts. */
  address?: string;
  /** Told of each process started (kine, the API server), for a caller that stops its children on a signal. */
  onSpawn?: (child: ChildProcess) => void;
  /**
   * A whole control plane for a real node: Services from `serviceCidr`, the controllers
   * (ServiceAccounts, endpoints, Deployments, volume binding) and the scheduler running.
   */
  controlPlane?: { serviceCidr: string };
}

export async function startKubeCluster(options: ClusterOptions = {}): Promise<KubeCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tps-kube-'));
  const address = options.address ?? '127.0.0.1';
  const f = (name: string) => join(dir, name);
  const children: ChildProcess[] = [];
  const logs: string[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((done) => {
            if (c.exitCode !== null || c.signalCode !== null) return done();
            c.once('exit', () => done());
            c.kill('SIGTERM');
            setTimeout(() => c.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Pods reach the API server at the `kubernetes` Service's address, the range's first (a /24 here).
    const serviceAddress = options.controlPlane?.serviceCidr.replace(/\.0\/24$/, '.1');
    makeCertificates(dir, [address, ...(serviceAddress ? [serviceAddress] : [])]);
    const adminToken = execFileSync('openssl', ['rand', '-hex', '24'], { encoding: 'utf8' }).trim();
    writeFileSync(f('tokens.csv'), `${adminToken},test-admin,test-admin-uid,system:masters\n`);
    const [kinePort, port] = [await freePort('127.0.0.1'), await freePort(address)];
    const started = (name: string, child: ChildProcess) => {
      children.push(child);
      options.onSpawn?.(child);
      return keepOutput(name, child, logs);
    };
    mkdirSync(f('kine'));
    started(
      'kine',
      spawn(
        join(KUBE_BIN, 'kine'),
        [
          '--endpoint',
          `sqlite://${f('kine/state.db')}?_journal=WAL&cache=shared&_busy_timeout=30000`,
          '--listen-address',
          `127.0.0.1:${kinePort}`,
          '--metrics-bind-address',
          '127.0.0.1:0',
          '--compact-min-retain',
          '1',
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    await waitFor(() => canConnect(kinePort), 'kine to listen', 15_000, 50);
    started(
      'kube-apiserver',
      spawn(
        join(KUBE_BIN, 'kube-apiserver'),
        [
          `--etcd-servers=http://127.0.0.1:${kinePort}`,
          `--etcd-compaction-interval=${options.compactionSeconds ?? 300}s`,
          `--watch-cache=${options.watchCache ?? true}`,
          `--bind-address=${address}`,
          `--advertise-address=${address}`,
          `--secure-port=${port}`,
          `--tls-cert-file=${f('serving.crt')}`,
          `--tls-private-key-file=${f('serving.key')}`,
          `--client-ca-file=${f('ca.crt')}`,
          `--token-auth-file=${f('tokens.csv')}`,
          '--authorization-mode=RBAC',
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${f('sa.pub')}`,
          `--service-account-signing-key-file=${f('sa.key')}`,
          ...(options.controlPlane
            ? [
                `--service-cluster-ip-range=${options.controlPlane.serviceCidr}`,
                // No cluster DNS: the API server reaches the kubelet (logs) by the node's address.
                '--kubelet-preferred-address-types=InternalIP',
              ]
            : [
                '--service-cluster-ip-range=10.96.0.0/16',
                // No controller manager runs to create each namespace's `default` ServiceAccount.
                '--disable-admission-plugins=ServiceAccount',
                '--endpoint-reconciler-type=none',
              ]),
          '--enable-priority-and-fairness=false',
          '--profiling=false',
          `--cert-dir=${f('certs')}`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    const ca = readFileSync(f('ca.crt'));
    const agent = new https.Agent({ ca, keepAlive: true });
    const send = (token: string, method: string, path: string, body?: unknown, contentType = 'application/json') =>
      new Promise<{ status: number; body: any }>((done, fail) => {
        const req = https.request(
          {
            host: address,
            port,
            path,
            method,
            agent,
            headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(body !== undefined && { 'content-type': contentType }) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString();
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                /* plain text, e.g. /readyz */
              }
              done({ status: res.statusCode ?? 0, body: parsed });
            });
          },
        );
        req.on('error', fail);
        req.end(body === undefined ? undefined : JSON.stringify(body));
      });
    const request = (method: string, path: string, body?: unknown, contentType?: string) => send(adminToken, method, path, body, contentType);
    await waitFor(
      async () => {
        for (const c of children) if (c.exitCode !== null) throw new Error(`${c.spawnfile} exited ${c.exitCode}: ${logs.slice(-5).join('')}`);
        return (await request('GET', '/readyz')).status === 200;
      },
      'the API server to be ready',
      60_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs.slice(-10).join('')}`);
    });
    const url = `https://${address}:${port}`;
    const kubeconfig = f('admin.kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server: url, 'certificate-authority': f('ca.crt') } }],
        users: [{ name: 'admin', user: { token: adminToken } }],
        contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
        'current-context': 'test',
      }),
    );
    if (options.controlPlane) {
      const common = [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        '--secure-port=0',
        '--leader-elect=false',
      ];
      started(
        'kube-controller-manager',
        spawn(
          join(KUBE_BIN, 'kube-controller-manager'),
          [
            ...common,
            `--service-account-private-key-file=${f('sa.key')}`,
            `--root-ca-file=${f('ca.crt')}`,
            '--use-service-account-credentials=false',
            // The node's pod range is the CNI config's; no cloud, no load balancers.
            '--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        ),
      );
      started('kube-scheduler', spawn(join(KUBE_BIN, 'kube-scheduler'), common, { stdio: ['ignore', 'pipe', 'pipe'] }));
    }
    const call = async (method: string, path: string, body?: unknown, contentType?: string) => {
      const r = await request(method, path, body, contentType);
      if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    const cluster: KubeCluster = {
      url,
      port,
      dir,
      caFile: f('ca.crt'),
      kubeconfig,
      request,
      requestAs: (token, method, path) => send(token, method, path),
      call,
      kubectl: (args, input) =>
        execFileSync(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 }),
      serviceAccountToken: async (namespace, name, seconds = 3600) =>
        (
          await call('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: { expirationSeconds: seconds },
          })
        ).status.token as string,
      inCluster: async (namespace, serviceAccount) => {
        const sa = join(dir, `sa-${namespace}-${serviceAccount}`);
        mkdirSync(sa, { recursive: true });
        writeFileSync(join(sa, 'ca.crt'), ca);
        writeFileSync(join(sa, 'namespace'), namespace);
        writeFileSync(join(sa, 'token'), await cluster.serviceAccountToken(namespace, serviceAccount));
        return { KUBERNETES_SERVICE_HOST: address, KUBERNETES_SERVICE_PORT: String(port), TPS_SERVICEACCOUNT_DIR: sa };
      },
      namespace: async (name) => {
        const r = await request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
        if (r.status !== 201 && r.status !== 409) throw new Error(`namespace ${name}: ${r.status} ${JSON.stringify(r.body)}`);
      },
      pids: children.map((c) => c.pid!),
      stop: async () => {
        agent.destroy();
        await stop();
      },
    };
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A CA, a serving certificate for the API server's addresses and localhost, and a service-account key pair, by openssl. */
function makeCertificates(dir: string, addresses: string[]): void {
  makeCa(dir, 'test-kubernetes-ca');
  signCertificate(dir, 'serving', '/CN=kube-apiserver', [...addresses.map((a) => `IP:${a}`), 'DNS:localhost', 'DNS:kubernetes.default.svc'], 'serverAuth');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  ssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(dir, 'sa.key'));
  ssl('pkey', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub'));
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** Keeps a child's last lines of output in `logs` (for a failure's message), named. */
export function keepOutput(name: string, child: ChildProcess, logs: string[], most = 300): ChildProcess {
  const keep = (chunk: Buffer) => {
    logs.push(`${name}: ${chunk.toString()}`);
    if (logs.length > most) logs.splice(0, logs.length - most);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}
