// The three test hosts the end-to-end suites share: "ingress" (real Caddy and nginx, and
// the oauth2-proxy stand-in on its loopback), "pod" (the sidecar process and two recording
// gateways: on the pod's loopback for inline mode, on its address for forward-auth mode,
// where the ingress reaches the gateway around the sidecar) and "rogue" (an attacker).
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMAND } from './command.js';
import { onJsonLines, startCaddy, startJsonProcess, startNginx, stopChild, waitForPort, type FrontProxySite, type JsonProcess } from './front-proxies.js';
import { createNetwork, type Host, type TestNetwork } from './netns.js';
import { waitFor } from './wait.js';

export const PORTS = { auth: 4180, sidecar: 8080, admin: 9090, gatewayInline: 18789, gatewayForwardAuth: 18790 } as const;

type Mode = FrontProxySite['mode'];

export interface TopologyOptions {
  /** Prefix of the temporary folder (keys, configs, proxy state). */
  name: string;
  users: Record<string, { password: string; email: string; groups: string[] }>;
  /** Sidecar config sections, each merged over the shared defaults of that section. */
  sidecar?: Record<string, Record<string, unknown>>;
  /** Which mode each front proxy serves on which port of the ingress host. */
  sites: Record<'caddy' | 'nginx', [Mode, number][]>;
  /** Every log line the sidecar prints. */
  onSidecarLog?: (line: Record<string, unknown>) => void;
}

export interface Topology {
  ingress: Host;
  pod: Host;
  rogue: Host;
  /** The HMAC key the sidecar signs with and the gateways verify with. */
  key: Buffer;
  /** Valid session cookies of the auth service, by user. */
  cookies: Record<string, string>;
  gateways: Record<Mode, JsonProcess>;
  teardown(): Promise<void>;
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const net: TestNetwork = await createNetwork(['ingress', 'pod', 'rogue']);
  const dir = mkdtempSync(join(tmpdir(), `tps-${opts.name}-`));
  const processes: { stop(): Promise<void> }[] = [];
  const teardown = async () => {
    for (const p of processes.reverse()) await p.stop().catch(() => undefined);
    await net.teardown();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [ingress, pod, rogue] = [net.host('ingress'), net.host('pod'), net.host('rogue')];
    const keysDir = join(dir, 'keys');
    mkdirSync(keysDir);
    const key = randomBytes(32);
    writeFileSync(join(keysDir, 'k1'), key);
    const users = join(dir, 'users.json');
    writeFileSync(users, JSON.stringify(opts.users));
    const shared: Record<string, Record<string, unknown>> = {
      listen: { host: '0.0.0.0', port: PORTS.sidecar, shutdownGraceSeconds: 1 },
      admin: { host: pod.address, port: PORTS.admin },
      upstream: { url: `http://127.0.0.1:${PORTS.gatewayInline}` },
      trust: { cidrs: [`${ingress.address}/32`] },
      identity: { userHeader: 'x-auth-request-email', groupsHeader: 'x-auth-request-groups' },
      assertion: { keysDir },
      gateway: { userHeader: 'x-forwarded-user', scopesHeader: 'x-openclaw-scopes', scopes: { default: ['operator.read'] } },
      // Every oauth2-proxy header is the front proxy's to set, aliases included.
      sanitise: { extraPrefixes: ['x-auth-request-'] },
      forwardAuth: { enabled: true, path: '/forward-auth' },
      logging: { level: 'info' },
    };
    const config = join(dir, 'sidecar.json');
    const sections = new Set([...Object.keys(shared), ...Object.keys(opts.sidecar ?? {})]);
    writeFileSync(config, JSON.stringify(Object.fromEntries([...sections].map((k) => [k, { ...shared[k], ...opts.sidecar?.[k] }]))));

    const repo = process.cwd();
    const node = process.execPath;
    const auth = await startJsonProcess(ingress, node, [join(repo, 'test/support/auth-service.ts'), '--host', '127.0.0.1', '--port', `${PORTS.auth}`, '--users', users]);
    processes.push(auth);
    const gateway = async (host: string, port: number) => {
      const g = await startJsonProcess(pod, node, [join(repo, 'test/support/recording-gateway.ts'), '--host', host, '--port', `${port}`, '--keys-dir', keysDir]);
      processes.push(g);
      return g;
    };
    const gateways = { inline: await gateway('127.0.0.1', PORTS.gatewayInline), 'forward-auth': await gateway(pod.address, PORTS.gatewayForwardAuth) };

    const sidecar = pod.spawn(node, [COMMAND, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    onJsonLines(sidecar.stdout!, opts.onSidecarLog ?? (() => undefined));
    let stderr = '';
    sidecar.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    processes.push({ stop: () => stopChild(sidecar) });
    await waitForPort(pod.address, PORTS.sidecar, sidecar, () => stderr);
    await waitFor(async () => (await fetch(`http://${pod.address}:${PORTS.admin}/readyz`)).status === 200, 'sidecar ready');

    const site = ([mode, port]: [Mode, number]): FrontProxySite => ({
      mode,
      port,
      authService: `127.0.0.1:${PORTS.auth}`,
      sidecar: `${pod.address}:${PORTS.sidecar}`,
      gateway: `${pod.address}:${PORTS.gatewayForwardAuth}`,
    });
    processes.push(await startCaddy(ingress, opts.sites.caddy.map(site)));
    processes.push(await startNginx(ingress, opts.sites.nginx.map(site)));
    return { ingress, pod, rogue, key, cookies: auth.ready['cookies'] as Record<string, string>, gateways, teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}
