// The test hosts the Caddy and nginx suites share: "ingress" (real Caddy and nginx, and
// oauth2-proxy, which they ask at 127.0.0.1:4180/oauth2/auth), "idp" (the OpenID provider
// oauth2-proxy signs users in with), "pod" (the sidecar process and two recording gateways:
// on the pod's loopback for inline mode, on its address for forward-auth mode, where the
// ingress reaches the gateway around the sidecar) and "rogue" (an attacker). Each user
// signs in on the provider's form before the suite starts; the suite holds their sessions.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMMAND } from './command.js';
import {
  onJsonLines,
  startCaddy,
  startJsonProcess,
  startNginx,
  startRecordingGateway,
  stopChild,
  waitForPort,
  type FrontProxySite,
  type JsonProcess,
} from './front-proxies.js';
import { createNetwork, type Host, type TestNetwork } from '../../harness/netns.js';
import { flags, oauth2ProxyOidcSettings, oidcClient, providerArgs } from '../../harness/oidc-client.js';
import { signIn } from '../../harness/oidc-sign-in.js';
import { makeTestCa } from '../../harness/test-ca.js';
import { waitFor } from '../../harness/wait.js';

const IDP_HOST = 'idp.example.com';

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
  /** The value of each user's oauth2-proxy session cookie (`_oauth2_proxy`), from a real sign-in. */
  cookies: Record<string, string>;
  gateways: Record<Mode, JsonProcess>;
  /**
   * Where each gateway's lines end now. A gateway writes a request's line before it answers,
   * so once every request sent so far is answered, a marker request sent straight to each
   * gateway (from the pod) has its line after all of theirs: the index of that line.
   */
  gatewayLinesEnd(): Promise<Record<Mode, number>>;
  teardown(): Promise<void>;
}

export async function startTopology(opts: TopologyOptions): Promise<Topology> {
  const net: TestNetwork = await createNetwork(['ingress', 'pod', 'rogue', 'idp'], { dns: { [IDP_HOST]: 'idp' } });
  const dir = mkdtempSync(join(tmpdir(), `tps-${opts.name}-`));
  const processes: { stop(): Promise<void> }[] = [];
  const teardown = async () => {
    for (const p of processes.reverse()) await p.stop().catch(() => undefined);
    await net.teardown();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [ingress, pod, rogue, idp] = [net.host('ingress'), net.host('pod'), net.host('rogue'), net.host('idp')];
    const keysDir = join(dir, 'keys');
    mkdirSync(keysDir);
    const key = randomBytes(32);
    writeFileSync(join(keysDir, 'k1'), key);
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

    const node = process.execPath;
    const auth = await startOauth2Proxy(ingress, idp, dir, opts.users);
    processes.push(...auth.processes);
    const gateway = async (host: string, port: number) => {
      const g = await startRecordingGateway(pod, host, port, keysDir);
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
    let markers = 0;
    const gatewayLinesEnd = async (): Promise<Record<Mode, number>> => {
      const marker = `/end-of-lines-${++markers}`;
      const targets = [`http://127.0.0.1:${PORTS.gatewayInline}${marker}`, `http://${pod.address}:${PORTS.gatewayForwardAuth}${marker}`];
      const send = pod.spawn(node, [
        '-e',
        `Promise.all(${JSON.stringify(targets)}.map((u) => fetch(u).then((r) => r.text()))).then(() => process.exit(0), () => process.exit(1))`,
      ]);
      const [code] = (await once(send, 'exit')) as [number | null];
      if (code !== 0) throw new Error('the gateway markers were not answered');
      const at = (g: JsonProcess) => g.lines.findIndex((l) => l['url'] === marker);
      await waitFor(() => at(gateways.inline) >= 0 && at(gateways['forward-auth']) >= 0, "the gateways' marker lines");
      return { inline: at(gateways.inline), 'forward-auth': at(gateways['forward-auth']) };
    };
    return { ingress, pod, rogue, key, cookies: await auth.sessions(), gateways, gatewayLinesEnd, teardown };
  } catch (err) {
    await teardown();
    throw err;
  }
}

/**
 * The OpenID provider on the idp host and oauth2-proxy on the ingress host (all addresses,
 * so the front proxies ask it on loopback and the sign-ins reach it from the test), run as
 * the Caddy and nginx examples expect it: `/oauth2/auth` answers 202 with the identity
 * headers, or 401.
 */
async function startOauth2Proxy(ingress: Host, idp: Host, dir: string, users: TopologyOptions['users']) {
  const repo = process.cwd();
  const processes: { stop(): Promise<void> }[] = [];
  const ca = makeTestCa(dir, [IDP_HOST]);
  const origin = `http://${ingress.address}:${PORTS.auth}`;
  const client = oidcClient(`https://${IDP_HOST}`, ca, `${origin}/oauth2/callback`, 'front-proxies');
  processes.push(await startJsonProcess(idp, process.execPath, providerArgs(dir, client, users, { host: idp.address, port: 443 }), 30_000));
  const child = ingress.spawn(
    join(repo, '.tools/bin/oauth2-proxy'),
    flags({
      ...oauth2ProxyOidcSettings(client),
      'http-address': `0.0.0.0:${PORTS.auth}`,
      'cookie-secure': 'false',
      'email-domain': '*',
      scope: 'openid email profile groups',
      'set-xauthrequest': 'true',
      'skip-provider-button': 'true',
      upstream: 'static://202',
    }),
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-20_000)));
  child.stdout!.on('data', () => undefined);
  processes.push({ stop: () => stopChild(child) });
  await waitForPort(ingress.address, PORTS.auth, child, () => stderr, 30_000);
  const sessions = async () => {
    const out: Record<string, string> = {};
    for (const [user, { password }] of Object.entries(users)) {
      const cookie = await signIn({
        start: `${origin}/`,
        user,
        password,
        ca: readFileSync(ca.caFile),
        connectTo: (url) => (url.hostname === IDP_HOST ? idp.address : ingress.address),
      });
      const match = /^_oauth2_proxy=([^;]+)$/.exec(cookie);
      if (!match) throw new Error(`${user}'s session is not one _oauth2_proxy cookie: ${cookie.slice(0, 200)}`);
      out[user] = match[1]!;
    }
    return out;
  };
  return { processes, sessions };
}
