// A real node for tests: the control plane of kube-cluster.ts with its controllers and
// scheduler, containerd (Debian's) with runc and the CNI bridge plugin, a kubelet and
// kube-proxy (built by scripts/install-peers.sh), and the images of
// scripts/build-node-images.sh imported under the names the chart uses. Pods run for real:
// their probes, security contexts, volumes, init and native sidecar containers, Services.
//
// The node's network is a bridge in the root namespace on a free /24 of 198.19.0.0/16 (the
// API server listens on its address, so pods reach it as the `kubernetes` Service), the
// Services' addresses the next /24. What a kubelet and kube-proxy change on the machine is
// put back by stop(): the kernel settings the kubelet sets, forwarding and bridged traffic
// through iptables (kube-proxy's Services need both), the KUBE-* iptables chains, the pods'
// cgroups, network namespaces and mounts, the bridge. Everything else lives in one folder.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keepOutput, KUBE_BIN, startKubeCluster, type KubeCluster } from '../../harness/kube-cluster.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

export const NODE_NAME = 'tps-node';
const execFileAsync = promisify(execFile);

export interface KubeNode {
  cluster: KubeCluster;
  /** The node's address on the pod network (its bridge's). */
  address: string;
  /** The pods' /24, and the Services'. */
  podCidr: string;
  serviceCidr: string;
  kubectl(args: string[], input?: string): string;
  /** Helm 3 with the cluster's kubeconfig. */
  helm(args: string[], timeoutMs?: number): string;
  /** As kubectl and helm, without holding the event loop: for steps taken while a test's requests flow. */
  kubectlAsync(args: string[]): Promise<string>;
  helmAsync(args: string[]): Promise<string>;
  /** The last lines each process wrote (for a failure's message). */
  logs(): string;
  stop(): Promise<void>;
}

/** The images of scripts/build-node-images.sh and the names they are imported under. */
const IMAGES: [file: string, name: string][] = [
  ['pause.tar', 'localhost/trusted-proxy-sidecar/pause'],
  ['sidecar.tar', 'ghcr.io/trusted-proxy-sidecar/trusted-proxy-sidecar'],
  ['openclaw.tar', 'ghcr.io/openclaw/openclaw'],
];
const PAUSE_IMAGE = 'localhost/trusted-proxy-sidecar/pause:1';

/** The kernel settings a kubelet sets (setupKernelTunables), and what kube-proxy's Services need. */
const SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.ip_forward',
  'net.bridge.bridge-nf-call-iptables',
];

const run = (cmd: string, args: string[], input?: string) => execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]) => {
  try {
    return run(cmd, args);
  } catch {
    return '';
  }
};

/** Two free /24s side by side: the pods', then the Services'. */
function pickNetwork(): { prefix: string; servicePrefix: string } {
  const used = run('ip', ['-4', '-o', 'addr', 'show']);
  for (let attempt = 0; attempt < 32; attempt++) {
    const n = 200 + ((process.pid + attempt * 2) % 27) * 2;
    const [prefix, servicePrefix] = [`198.19.${n}`, `198.19.${n + 1}`];
    if (!used.includes(`${prefix}.`) && !used.includes(`${servicePrefix}.`)) return { prefix, servicePrefix };
  }
  throw new Error('no free pair of /24s in 198.19.200.0/21 for the node');
}

export async function startKubeNode(imagesDir: string): Promise<KubeNode> {
  const { prefix, servicePrefix } = pickNetwork();
  const address = `${prefix}.1`;
  const podCidr = `${prefix}.0/24`;
  const serviceCidr = `${servicePrefix}.0/24`;
  const bridge = `tpsn${process.pid.toString(36)}`.slice(0, 15);
  const saved = new Map(SYSCTLS.map((k) => [k, run('sysctl', ['-n', k]).trim()]));
  const children: ChildProcess[] = [];
  const logs: string[] = [];
  let dir: string | undefined;
  let cluster: KubeCluster | undefined;
  const started = (name: string, child: ChildProcess) => {
    children.push(child);
    return keepOutput(name, child, logs);
  };

  const stop = async () => {
    // The pods first, as a drained node's would go: their sandboxes, mounts and cgroups with them.
    if (cluster && children.length > 0) {
      const kubectl = (args: string[]) => quiet(join(KUBE_BIN, 'kubectl'), ['--kubeconfig', cluster!.kubeconfig, ...args]);
      // Their owners orphan them, so that no pod is first deleted with its own grace period
      // (preStop hooks of several seconds); then every pod goes with one second.
      kubectl(['delete', 'deployments,replicasets,statefulsets,jobs', '--all', '--all-namespaces', '--cascade=orphan', '--wait=true', '--timeout=30s']);
      // Bounded: with a dozen pods the kubelet can take a minute, and what it has not removed
      // by then the steps below do (their processes, cgroups, network namespaces, mounts).
      kubectl(['delete', 'pods', '--all', '--all-namespaces', '--grace-period=1', '--wait=true', '--timeout=15s']);
    }
    for (const c of children.reverse()) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const exited = new Promise<void>((done) => c.once('exit', () => done()));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (dir) {
      const nodeDir = dir;
      // Whatever the pods left: their processes, shims, cgroups, network namespaces, mounts.
      for (const pid of cgroupProcesses('kubepods')) quiet('kill', ['-9', pid]);
      for (const line of quiet('pgrep', ['-f', nodeDir]).split('\n').filter(Boolean)) quiet('kill', ['-9', line]);
      removeCgroups('kubepods');
      for (const ns of quiet('ip', ['netns', 'list']).split('\n')) {
        const name = ns.split(' ')[0];
        if (name && name.startsWith('cni-') && quiet('ip', ['netns', 'pids', name]).trim() === '') quiet('ip', ['netns', 'delete', name]);
      }
      for (const mount of readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1])
        .filter((m): m is string => m !== undefined && m.startsWith(nodeDir))
        .sort()
        .reverse()) {
        quiet('umount', ['-l', mount]);
      }
    }
    quiet(join(KUBE_BIN, 'kube-proxy'), ['--cleanup']);
    removeKubeChains();
    quiet('ip', ['link', 'delete', bridge]);
    for (const [key, value] of saved) quiet('sysctl', ['-q', '-w', `${key}=${value}`]);
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  };

  try {
    run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    run('ip', ['addr', 'add', `${address}/24`, 'dev', bridge]);
    run('ip', ['link', 'set', bridge, 'up']);
    cluster = await startKubeCluster({ address, controlPlane: { serviceCidr } });
    dir = join(cluster.dir, 'node');
    const f = (name: string) => join(dir!, name);
    mkdirSync(f('cni/net.d'), { recursive: true });

    // containerd: its own root, state, socket and runc root; the local pause image; runc
    // may not lower a process's OOM score here (no CAP_SYS_RESOURCE), so it is told not to ask.
    writeFileSync(
      f('containerd.toml'),
      `version = 2
root = "${f('containerd/root')}"
state = "${f('containerd/state')}"
[grpc]
  address = "${f('containerd.sock')}"
[ttrpc]
  address = "${f('containerd.ttrpc.sock')}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${f('containerd/opt')}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${f('cni/net.d')}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = false
    BinaryName = "/usr/sbin/runc"
    Root = "${f('runc')}"
`,
    );
    writeFileSync(
      f('cni/net.d/10-tps-node.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'tps-node',
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', ranges: [[{ subnet: podCidr, gateway: address }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: f('cni/ipam') },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      }),
    );
    started('containerd', spawn('containerd', ['--config', f('containerd.toml')], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const ctr = (args: string[]) => run('ctr', ['--address', f('containerd.sock'), '--namespace', 'k8s.io', ...args]);
    await waitFor(() => ctr(['version']).includes('Server'), 'containerd', 15_000, 100);
    for (const [file, name] of IMAGES) ctr(['images', 'import', '--base-name', name, join(imagesDir, file)]);

    // Services need forwarding and bridged traffic through iptables (the reply of a pod
    // behind a Service to a pod on the same bridge must meet the DNAT it answers).
    run('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1']);
    const [kubeletPort, kubeletHealth, proxyHealth, proxyMetrics] = [await freePort(address), await freePort(), await freePort(), await freePort()];
    writeFileSync(
      f('kubelet.yaml'),
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        // These machines run cgroup v1, which Kubernetes 1.35 still supports on request.
        failCgroupV1: false,
        cgroupDriver: 'cgroupfs',
        containerRuntimeEndpoint: `unix://${f('containerd.sock')}`,
        address,
        port: kubeletPort,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: kubeletHealth,
        // The API server reaches the kubelet (logs, exec) without a client certificate of its
        // own; the kubelet's port listens on the node's test address only.
        authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
        authorization: { mode: 'AlwaysAllow' },
        clusterDomain: 'cluster.local',
        failSwapOn: false,
        podLogsDir: f('pod-logs'),
        volumePluginDir: f('volume-plugins'),
        // A test machine's disk is not the node's business: nothing is evicted or collected.
        evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        serializeImagePulls: false,
        // Secrets' and ConfigMaps' files follow their objects within this (a minute by default).
        syncFrequency: '5s',
        rotateCertificates: false,
        maxPods: 30,
      }),
    );
    started(
      'kubelet',
      spawn(
        join(KUBE_BIN, 'kubelet'),
        [
          `--config=${f('kubelet.yaml')}`,
          `--kubeconfig=${cluster.kubeconfig}`,
          `--root-dir=${f('kubelet')}`,
          `--cert-dir=${f('kubelet-pki')}`,
          `--hostname-override=${NODE_NAME}`,
          `--node-ip=${address}`,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    writeFileSync(
      f('kube-proxy.yaml'),
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'iptables',
        clientConnection: { kubeconfig: cluster.kubeconfig },
        hostnameOverride: NODE_NAME,
        clusterCIDR: podCidr,
        healthzBindAddress: `127.0.0.1:${proxyHealth}`,
        metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
        nodePortAddresses: [`${address}/32`],
        // Leave the machine's conntrack settings as they are.
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        iptables: { syncPeriod: '2s', minSyncPeriod: '0s' },
      }),
    );
    started('kube-proxy', spawn(join(KUBE_BIN, 'kube-proxy'), [`--config=${f('kube-proxy.yaml')}`], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const readyNode = () => {
      const node = JSON.parse(cluster!.kubectl(['get', 'node', NODE_NAME, '-o', 'json'])) as { status: { conditions: { type: string; status: string }[] } };
      return node.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
    };
    await waitFor(
      () => {
        for (const c of children) if (c.exitCode !== null) throw new Error(`${c.spawnfile} exited ${c.exitCode}`);
        return readyNode();
      },
      'the node to be Ready',
      60_000,
      250,
    );
    // The `default` ServiceAccount of a namespace comes from a controller: wait for the first.
    await waitFor(
      () => cluster!.kubectl(['-n', 'default', 'get', 'serviceaccount', 'default', '-o', 'name']).includes('default'),
      'the ServiceAccount controller',
      30_000,
      250,
    );
    const kubeconfig = cluster.kubeconfig;
    return {
      cluster,
      address,
      podCidr,
      serviceCidr,
      kubectl: cluster.kubectl,
      helm: (args, timeoutMs = 300_000) =>
        execFileSync(join(KUBE_BIN, 'helm3'), ['--kubeconfig', kubeconfig, ...args], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
          timeout: timeoutMs,
        }),
      kubectlAsync: async (args) => (await execFileAsync(join(KUBE_BIN, 'kubectl'), ['--kubeconfig', kubeconfig, ...args], { timeout: 300_000 })).stdout,
      helmAsync: async (args) => (await execFileAsync(join(KUBE_BIN, 'helm3'), ['--kubeconfig', kubeconfig, ...args], { timeout: 300_000 })).stdout,
      logs: () => logs.slice(-60).join(''),
      stop,
    };
  } catch (err) {
    const tail = logs.slice(-30).join('');
    await stop();
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
}

/** Every process in a cgroup subtree, in every v1 hierarchy. */
function cgroupProcesses(name: string): string[] {
  const pids = new Set<string>();
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const walk = (path: string) => {
      let entries: string[];
      try {
        entries = readdirSync(path, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
        for (const pid of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n')) if (pid) pids.add(pid);
      } catch {
        return;
      }
      for (const e of entries) walk(join(path, e));
    };
    walk(join('/sys/fs/cgroup', hierarchy, name));
  }
  return [...pids];
}

/** Removes a cgroup subtree (now empty of processes) from every v1 hierarchy, deepest first. */
function removeCgroups(name: string): void {
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const root = join('/sys/fs/cgroup', hierarchy, name);
    const dirs: string[] = [];
    const walk = (path: string) => {
      let entries;
      try {
        entries = readdirSync(path, { withFileTypes: true });
      } catch {
        return;
      }
      dirs.push(path);
      for (const e of entries) if (e.isDirectory()) walk(join(path, e.name));
    };
    walk(root);
    for (const d of dirs.reverse()) quiet('rmdir', [d]);
  }
}

/** The KUBE-* chains the kubelet and kube-proxy left (kube-proxy --cleanup leaves the kubelet's), and the jumps to them. */
function removeKubeChains(): void {
  for (const tool of ['iptables', 'ip6tables']) {
    for (const table of ['filter', 'nat', 'mangle']) {
      const rules = quiet(`${tool}-save`, ['-t', table]);
      for (const rule of rules.split('\n').filter((l) => /^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*KUBE-/.test(l))) {
        quiet(tool, [
          '-t',
          table,
          '-D',
          ...rule
            .slice(3)
            .match(/"[^"]*"|\S+/g)!
            .map((w) => w.replace(/^"|"$/g, '')),
        ]);
      }
      const chains = [...rules.matchAll(/^:(KUBE-[A-Z0-9-]+)/gm)].map((m) => m[1]!);
      for (const chain of chains) quiet(tool, ['-t', table, '-F', chain]);
      for (const chain of chains) quiet(tool, ['-t', table, '-X', chain]);
    }
  }
}
