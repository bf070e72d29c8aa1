// Test hosts with their own addresses: Linux network namespaces joined by a bridge in
// the root namespace, on a /24 from 198.18.0.0/15 (the range reserved for benchmarks).
// Everything is named after this process so parallel test files never collide, and
// teardown() removes namespaces, links and the processes started in them.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

export interface Host {
  name: string;
  /** The namespace's address on the test network. */
  address: string;
  /** Runs a command to completion inside the namespace. */
  exec(cmd: string, args: string[], opts?: { input?: string; timeoutMs?: number }): string;
  /** Starts a long-running process inside the namespace; teardown() stops it. */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
}

export interface TestNetwork {
  subnet: string;
  /** The root namespace's own address on the test network (the bridge's): servers the test runs itself listen there to be reachable from the hosts. */
  rootAddress: string;
  hosts: Map<string, Host>;
  host(name: string): Host;
  teardown(): Promise<void>;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

let networksMade = 0;

/** Picks an unused 198.18.x.0/24 (or 198.19.x.0/24). */
function pickSubnet(): string {
  const used = ip('-4', '-o', 'addr', 'show');
  for (let attempt = 0; attempt < 64; attempt++) {
    const n = (process.pid * 7 + (networksMade + attempt) * 13) % 512;
    const prefix = `198.${18 + (n >> 8)}.${n & 255}`;
    if (!used.includes(`${prefix}.`)) return prefix;
  }
  throw new Error('no free test subnet in 198.18.0.0/15');
}

/**
 * A name no namespace or link uses yet: the process id plus a per-process sequence, so two
 * networks of one jest worker never share names, even if a teardown left something behind.
 */
function pickId(): string {
  const taken = ip('netns', 'list') + ip('-o', 'link', 'show');
  for (;;) {
    const id = `${process.pid.toString(36)}${(networksMade++).toString(36)}`.slice(-8);
    if (!taken.includes(`tps-${id}-`) && !taken.includes(`tpsb${id}`) && !taken.includes(`tpsv${id}`)) return id;
  }
}

export interface NetworkOptions {
  /**
   * Names every host resolves, each to the address of a host of this network (by its name):
   * written to /etc/netns/<namespace>/hosts, which `ip netns exec` mounts over /etc/hosts.
   */
  dns?: Record<string, string>;
}

export async function createNetwork(names: string[], options: NetworkOptions = {}): Promise<TestNetwork> {
  const prefix = pickSubnet();
  const id = pickId();
  const bridge = `tpsb${id}`;
  const children: ChildProcess[] = [];
  const namespaces: string[] = [];
  const hosts = new Map<string, Host>();
  const teardown = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of namespaces) {
      try {
        for (const pid of ip('netns', 'pids', ns).split('\n').filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* already gone */
          }
        }
      } catch {
        /* namespace already gone */
      }
      try {
        ip('netns', 'del', ns);
      } catch {
        /* already gone */
      }
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      /* already gone */
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${prefix}.1/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    names.forEach((name, i) => {
      const ns = `tps-${id}-${name}`;
      const veth = `tpsv${id}${i}`;
      const address = `${prefix}.${10 + i}`;
      ip('netns', 'add', ns);
      namespaces.push(ns);
      ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ip('link', 'set', veth, 'master', bridge);
      ip('link', 'set', veth, 'up');
      ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.set(name, {
        name: ns,
        address,
        exec: (cmd, args, opts = {}) =>
          execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
            encoding: 'utf8',
            input: opts.input,
            timeout: opts.timeoutMs ?? 30_000,
            stdio: ['pipe', 'pipe', 'pipe'],
          }),
        spawn: (cmd, args, opts = {}) => {
          const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
          children.push(child);
          return child;
        },
      });
    });
    const dns = Object.entries(options.dns ?? {}).map(([dnsName, hostName]) => {
      const host = hosts.get(hostName);
      if (!host) throw new Error(`dns: no host ${hostName}`);
      return `${host.address} ${dnsName}\n`;
    });
    if (dns.length > 0) {
      for (const ns of namespaces) {
        mkdirSync(`/etc/netns/${ns}`, { recursive: true });
        writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n${dns.join('')}`);
      }
    }
  } catch (err) {
    await teardown();
    throw err;
  }
  return {
    subnet: `${prefix}.0/24`,
    rootAddress: `${prefix}.1`,
    hosts,
    host: (name) => {
      const h = hosts.get(name);
      if (!h) throw new Error(`no host ${name}`);
      return h;
    },
    teardown,
  };
}
