// The whole path a user takes to the real OpenClaw Control UI, each part a real process in
// its own network namespace:
//   client (Chromium) → ingress (Traefik, TLS, ForwardAuth to oauth2-proxy, which sends a
//   browser without a session to the OpenID provider's login form; see real-ingress.ts)
//   → pod (the sidecar on the pod address; the OpenClaw gateway under the guard, bound
//   beyond loopback to prove the guard: see startGateway)
// and a "rogue" host on the same network that is not the ingress. Traefik routes by
// manifests/examples/traefik/inline.yaml (the chart's Traefik objects), applied as is.
// The gateway runs with a private /tmp (a bind mount inside its own mount namespace), so
// the lock and log files it writes outside its state dir go away with the run.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { onJsonLines, stopChild, waitForPort } from '../../support/front-proxies.js';
import { createNetwork, type Host, type TestNetwork } from '../../../harness/netns.js';
import { IDP_HOST, INGRESS_DNS, INGRESS_HOSTS, PUBLIC_ORIGIN, readObjects, startRealIngress } from '../../support/real-ingress.js';
import { waitFor } from '../../../harness/wait.js';
import { launchChromium } from '../../../harness/chromium.js';
import { COMMAND as CLI } from '../../support/command.js';
import { AssertionSigner } from '../../../src/assertion/sign.js';
import { CI_VALUES, renderChart } from '../../chart/k8s.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'openclaw');
const OPENCLAW = join(ROOT, '.cache', 'openclaw', 'node_modules', 'openclaw', 'openclaw.mjs');
const GUARD = join(ROOT, 'dist', 'guard.js');
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'openclaw');

export { PUBLIC_ORIGIN };
export const GATEWAY_PORT = 18789;
/** The gateway's password for clients inside the pod (gateway.auth.password, its local-direct fallback). */
export const LOCAL_PASSWORD = randomBytes(24).toString('base64url');
/** The gateway's own webhook token (hooks.token): long and random, as OpenClaw asks. */
export const HOOK_TOKEN = randomBytes(24).toString('base64url');
const SIDECAR_PORT = 8080;

/** The identity provider's accounts: mallory signs in fine but is in no group the sidecar admits. */
export const USERS = {
  alice: { password: 'alice-pw', email: 'alice@example.com', groups: ['claw-users'] },
  bob: { password: 'bob-pw', email: 'bob@example.com', groups: ['claw-readers'] },
  mallory: { password: 'mallory-pw', email: 'mallory@example.com', groups: ['contractors'] },
};

export interface Stack {
  net: TestNetwork;
  client: Host;
  /** Traefik's host: the one source the sidecar trusts. */
  ingress: Host;
  rogue: Host;
  pod: Host;
  dir: string;
  /** The gateway's config file, as the gateway-config init step left it. */
  gatewayConfigPath: string;
  sidecarConfigPath: string;
  /** The gateway's own console output so far. */
  gatewayOutput(): string;
  /** The sidecar's JSON log lines so far. */
  sidecarLogs(): Record<string, unknown>[];
  /** The sidecar's stderr and log, and how it exited if it did (for failure messages). */
  sidecarOutput(): string;
  /** Traefik's, oauth2-proxy's and the identity provider's output (for failure messages). */
  ingressOutput(): string;
  /** Rewrites the gateway's config file and waits until the gateway has applied it. */
  editGatewayConfig(edit: (config: Record<string, any>) => void): Promise<void>;
  /** A request through Traefik from outside the cluster, with no session (a webhook's caller). */
  publicRequest(path: string, headers: Record<string, string>, init?: { method?: string; body?: string }): Promise<{ status: number; body: string }>;
  /** The real OpenClaw CLI inside the pod, with the gateway's state (its config names the port). */
  openclawCli(args: string[], env?: Record<string, string>): Promise<{ code: number | null; output: string }>;
  /** Debian's Chromium inside a test host, driven by Playwright. */
  launchBrowser(host: Host): Promise<Browser>;
  /** An assertion signed with the sidecar's key, as the sidecar would mint it for this request. */
  /** `scope`: the scopes the assertion grants, as the sidecar would put them (the guard holds the scopes header to them). */
  mintAssertion(user: string, method: string, uri: string, scope?: string): string;
  /** Runs the built CLI (in the test's own namespace) and returns exit code and output. */
  cli(args: string[]): { code: number; stdout: string; stderr: string };
  teardown(): Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'tps-openclaw-'));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const teardown = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        /* keep tearing down */
      }
    }
  };
  try {
    const net = await createNetwork(['client', ...INGRESS_HOSTS, 'pod', 'rogue'], { dns: INGRESS_DNS });
    cleanups.push(() => net.teardown());
    const [client, ingress, pod, rogue] = ['client', 'ingress', 'pod', 'rogue'].map((n) => net.host(n)) as [Host, Host, Host, Host];
    const cli = (args: string[]) => runCli(args);

    // The gateway's private /tmp (see startGateway), made first: the key folder is in it,
    // shared by the sidecar (which signs) and the guard in the gateway (which verifies).
    const gatewayTmp = join(dir, 'gateway-tmp');
    const stateDir = join(gatewayTmp, 'state');
    mkdirSync(join(gatewayTmp, 'home'), { recursive: true });
    mkdirSync(stateDir, { mode: 0o700 });

    // The sidecar: trusts only the ingress, maps groups to OpenClaw scopes.
    const keysDir = join(gatewayTmp, 'keys');
    mkdirSync(keysDir);
    writeFileSync(join(keysDir, 'k1'), randomBytes(32), { mode: 0o600 });
    const sidecarConfigPath = join(dir, 'sidecar.yaml');
    writeFileSync(
      sidecarConfigPath,
      JSON.stringify({
        listen: { host: pod.address, port: SIDECAR_PORT, allowedOrigins: [PUBLIC_ORIGIN], shutdownGraceSeconds: 1 },
        admin: { host: '127.0.0.1', port: 9090 },
        upstream: { url: `http://127.0.0.1:${GATEWAY_PORT}` },
        trust: { cidrs: [`${ingress.address}/32`] },
        identity: {
          userHeader: 'x-auth-request-email',
          emailHeader: 'x-auth-request-email',
          groupsHeader: 'x-auth-request-groups',
          allowGroups: ['claw-users', 'claw-readers'],
          // docs/install.md's token check. The provider and its CA (made in this folder) come
          // up with the ingress below; the sidecar fetches the keys once they do.
          token: { mode: 'match', issuer: `https://${IDP_HOST}`, audiences: ['openclaw'], caFile: join(dir, 'ca.crt') },
        },
        assertion: { keysDir },
        gateway: {
          userHeader: 'x-forwarded-user',
          scopesHeader: 'x-openclaw-scopes',
          scopes: { default: ['operator.read', 'operator.write', 'operator.approvals', 'operator.questions'], byGroup: { 'claw-readers': ['operator.read'] } },
        },
        // OpenClaw's webhooks, as manifests/examples/traefik/values.yaml routes them.
        routes: [{ name: 'hooks', path: '/hooks', methods: ['POST'], mode: 'machine', maxBodyBytes: 262144, requestsPerMinutePerSource: 60 }],
        logging: { level: 'debug' },
      }),
    );

    // The gateway's state dir starts with the seed report's config; the init step the
    // chart runs merges the trust settings into it, as on every pod start.
    const gatewayConfigPath = join(stateDir, 'openclaw.json');
    writeFileSync(gatewayConfigPath, readFileSync(join(FIXTURES, 'seed-config.json5')), { mode: 0o600 });
    const merged = cli(['gateway-config', '--config', sidecarConfigPath, '--file', gatewayConfigPath, '--public-origin', PUBLIC_ORIGIN]);
    if (merged.code !== 0) throw new Error(`gateway-config failed: ${merged.stderr}`);
    // The gateway's webhooks on, with their own token (docs/openclaw.md, section 7).
    const gatewayConfig = JSON.parse(readFileSync(gatewayConfigPath, 'utf8')) as Record<string, unknown>;
    gatewayConfig['hooks'] = { enabled: true, token: HOOK_TOKEN, path: '/hooks' };
    // Clients inside the pod (the CLI) authenticate with the gateway's password, past the guard's LOCAL_DIRECT.
    (gatewayConfig['gateway'] as { auth: Record<string, unknown> }).auth['password'] = LOCAL_PASSWORD;
    writeFileSync(gatewayConfigPath, JSON.stringify(gatewayConfig, null, 2), { mode: 0o600 });

    const gateway = startGateway(pod, gatewayTmp);
    cleanups.push(() => stopGateway(pod, gateway.child));

    const sidecar = startJsonLines(pod, process.execPath, [CLI, 'serve', '--config', sidecarConfigPath]);
    cleanups.push(() => stopChild(sidecar.child));

    const realIngress = await startRealIngress({
      net,
      dir,
      users: USERS,
      traefikObjects: readObjects(join(ROOT, 'manifests', 'examples', 'traefik', 'inline.yaml')),
      services: [{ name: 'openclaw', ports: [{ name: 'http', port: SIDECAR_PORT, host: pod, targetPort: SIDECAR_PORT }] }],
    });
    cleanups.push(() => realIngress.stop());

    await waitForPort(pod.address, SIDECAR_PORT, sidecar.child, sidecar.output);
    await waitFor(() => /\[gateway\] ready/.test(gateway.output()) || gatewayExited(gateway), 'the OpenClaw gateway to be ready', 90_000, 200);
    if (gateway.child.exitCode !== null) throw new Error(`the gateway exited:\n${gateway.output()}`);
    // Ready once it has the provider's keys too (identity.token), not only its listener.
    await waitFor(
      () => pod.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:9090/readyz']) === '200',
      'the sidecar to be ready',
      60_000,
      200,
    );

    const editGatewayConfig = async (edit: (config: Record<string, any>) => void) => {
      const config = JSON.parse(readFileSync(gatewayConfigPath, 'utf8')) as Record<string, any>;
      edit(config);
      const before = gateway.output().length;
      writeFileSync(gatewayConfigPath, JSON.stringify(config, null, 2));
      // The gateway also rewrites its own config at run time, so only a reload line that
      // names the auth settings proves this edit is in force.
      await waitFor(
        () => /config (change|hot reload) applied \([^)]*gateway\.auth/i.test(gateway.output().slice(before)),
        'the gateway to apply the auth change',
        30_000,
        100,
      );
    };

    const launchBrowser = async (host: Host) => {
      const browser = await launchChromium(host, dir, realIngress.chromiumArgs);
      cleanups.push(() => browser.close());
      return browser;
    };

    return {
      net,
      client,
      ingress,
      rogue,
      pod,
      dir,
      gatewayConfigPath,
      sidecarConfigPath,
      gatewayOutput: gateway.output,
      sidecarLogs: () => sidecar.lines(),
      sidecarOutput: () => `exit=${sidecar.child.exitCode ?? sidecar.child.signalCode ?? 'running'}\n${sidecar.output()}`,
      ingressOutput: realIngress.output,
      editGatewayConfig,
      publicRequest: realIngress.request,
      openclawCli: (args, env = {}) => {
        const child = pod.spawn(process.execPath, [OPENCLAW, ...args], {
          env: {
            PATH: process.env['PATH'],
            HOME: join(gatewayTmp, 'home'),
            NO_COLOR: '1',
            OPENCLAW_STATE_DIR: stateDir,
            OPENCLAW_CONFIG_PATH: gatewayConfigPath,
            ...env,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
        child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        return new Promise((done) =>
          child.once('exit', (code) => {
            clearTimeout(timer);
            done({ code, output });
          }),
        );
      },
      launchBrowser,
      mintAssertion: (user, method, uri, scope) => mint(readFileSync(join(keysDir, 'k1')), user, method, uri, scope),
      cli,
      teardown,
    };
  } catch (err) {
    await teardown();
    throw err;
  }
}

function mint(key: Buffer, user: string, method: string, uri: string, scope?: string): string {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: 'trusted-proxy-sidecar',
    aud: 'gateway',
    sub: user,
    groups: [],
    scope,
    iat: now,
    nbf: now,
    exp: now + 30,
    jti: randomBytes(8).toString('hex'),
    cip: '203.0.113.7',
    htm: method,
    htu: uri,
  };
  return new AssertionSigner('k1', key).sign(claims);
}

function runCli(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

interface Proc {
  child: ChildProcess;
  output(): string;
}

function collect(child: ChildProcess): () => string {
  let text = '';
  const add = (c: Buffer) => (text = (text + c.toString()).slice(-200_000));
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => text;
}

function gatewayExited(p: Proc): boolean {
  return p.child.exitCode !== null || p.child.signalCode !== null;
}

/**
 * The real gateway, as the chart runs it with `gateway.guard.enabled` (its settings taken
 * from the rendered chart): under the guard (`node --import dist/guard.js`), and here bound
 * beyond the pod's loopback on purpose (the
 * mistake the guard is for). Inside `ip netns exec` the mount namespace is private, so
 * binding `tmp` over /tmp there is invisible to everyone else.
 */
function startGateway(pod: Host, gatewayTmp: string): Proc {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: '/tmp/home',
    TMPDIR: '/tmp',
    NO_COLOR: '1',
    OPENCLAW_STATE_DIR: '/tmp/state',
    OPENCLAW_CONFIG_PATH: '/tmp/state/openclaw.json',
    OPENCLAW_SKIP_CHANNELS: '1',
    OPENCLAW_DISABLE_BONJOUR: '1',
    ...chartGuardEnv(),
  };
  // A checkout that itself lives under /tmp (a CI clone in a mktemp folder) would vanish
  // behind the private /tmp: bind it back in at the same path first.
  const script = [
    'case "$2" in /tmp/*) mkdir -p "$1/${2#/tmp/}" && mount --bind "$2" "$1/${2#/tmp/}" || exit 1;; esac',
    'mount --rbind "$1" /tmp && shift 2 && exec "$@"',
  ].join('\n');
  const args = [gatewayTmp, ROOT, process.execPath, '--import', GUARD, OPENCLAW, 'gateway', 'run', '--port', String(GATEWAY_PORT), '--bind', 'lan'];
  const child = pod.spawn('sh', ['-c', script, 'sh', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { child, output: collect(child) };
}

/**
 * The guard's settings as the chart renders them for the gateway container
 * (ci/guard-values.yaml), with this stack's key folder in place of the pod's mount.
 */
function chartGuardEnv(): Record<string, string> {
  const deployment = renderChart([join(CI_VALUES, 'guard-values.yaml')]).objects.find((o) => o.kind === 'Deployment') as any;
  const gateway = deployment.spec.template.spec.containers.find((c: { name: string }) => c.name === 'gateway');
  const env: Record<string, string> = Object.fromEntries(
    (gateway.env as { name: string; value: string }[]).filter((e) => e.name.startsWith('TRUSTED_PROXY_GUARD_')).map((e) => [e.name, e.value]),
  );
  if (env['TRUSTED_PROXY_GUARD_PORTS'] !== String(GATEWAY_PORT) || !env['TRUSTED_PROXY_GUARD_KEYS_DIR'])
    throw new Error(`unexpected guard settings from the chart: ${JSON.stringify(env)}`);
  return { ...env, TRUSTED_PROXY_GUARD_KEYS_DIR: '/tmp/keys' };
}

/**
 * The gateway re-executes itself, so the PID started is not always the one serving:
 * stop every process left in the pod namespace that runs OpenClaw, then the one started.
 */
async function stopGateway(pod: Host, child: ChildProcess): Promise<void> {
  const pids = () =>
    execFileSync('ip', ['netns', 'pids', pod.name], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((pid) => {
        try {
          return /openclaw/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
        } catch {
          return false;
        }
      });
  for (const pid of pids()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  try {
    await waitFor(() => pids().length === 0, 'the gateway processes to exit', 10_000, 100);
  } finally {
    for (const pid of pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await stopChild(child, 1000);
  }
}

function startJsonLines(host: Host, cmd: string, args: string[]): Proc & { lines(): Record<string, unknown>[] } {
  const child = host.spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  onJsonLines(child.stdout!, (line) => lines.push(line));
  let errors = '';
  child.stderr!.on('data', (c: Buffer) => (errors += c.toString()));
  return {
    child,
    output: () =>
      `${errors}\n${lines
        .slice(-20)
        .map((l) => JSON.stringify(l))
        .join('\n')}`,
    lines: () => lines,
  };
}
