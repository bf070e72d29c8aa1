// The real OpenClaw Control UI in a real browser, through Traefik + oauth2-proxy + an
// OpenID provider's login form + the sidecar, with the gateway config that
// `gateway-config` merged into the seed report's config. Every case is judged by what the browser and the gateway show:
// the `hello-ok` frame (auth method and scopes), the WebSocket close code and reason, the
// gateway's HTTP answers and log lines.
import { jest } from '@jest/globals';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { sample } from '../../support/metrics.js';
import { waitFor } from '../../../harness/wait.js';
import { IDP_HOST } from '../../support/real-ingress.js';
import { ARTIFACTS, GATEWAY_PORT, HOOK_TOKEN, LOCAL_PASSWORD, PUBLIC_ORIGIN, USERS, startStack, type Stack } from './stack.js';

jest.setTimeout(120_000);

const POLICY_SCOPES = ['operator.approvals', 'operator.questions', 'operator.read', 'operator.write'];
const PAIRING_REQUIRED = 'pairing required: device is not approved yet';

type Outcome =
  { kind: 'hello-ok'; auth: { method: string; role: string; scopes: string[] } } | { kind: 'closed'; code: number; reason: string; error: string | undefined };

interface UiVisit {
  page: Page;
  /** How the Control UI's first WebSocket (in the page's last document) ended its handshake. */
  outcome: Outcome;
  /** POSTs from the page, as the Control UI's own scripts would (cookie, Origin). */
  post(path: string): Promise<{ status: number; body: string }>;
}

let stack: Stack;
let browser: Browser;
let failures = 0;
afterEach(() => {
  const state = expect.getState();
  if (state.assertionCalls > 0 && state.numPassingAsserts < state.assertionCalls) failures++;
});

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStack();
  browser = await stack.launchBrowser(stack.client);
}, 240_000);

afterAll(async () => {
  const sidecar = stack?.sidecarOutput() ?? '';
  if (!sidecar.startsWith('exit=running')) console.log(sidecar.slice(0, 6000));
  if (failures > 0) console.log(stack?.ingressOutput().slice(-8000));
  await stack?.teardown();
}, 60_000);

/** The page opens the public URL, is sent to the provider's login form, and signs in there. */
async function signIn(page: Page, user: keyof typeof USERS): Promise<void> {
  await page.goto(`${PUBLIC_ORIGIN}/`);
  expect(new URL(page.url()).host).toBe(IDP_HOST);
  expect(new URL(page.url()).pathname).toMatch(/^\/interaction\//);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', USERS[user].password);
  await page.click('button[type=submit]');
}

/**
 * A new browser profile (so a new device identity) opens the public URL, is sent to the
 * provider's login form, signs in, comes back through oauth2-proxy, and lands in the
 * Control UI.
 */
async function visit(user: keyof typeof USERS, extraHTTPHeaders: Record<string, string> = {}): Promise<UiVisit> {
  const context = await browser.newContext({ extraHTTPHeaders });
  const page = await context.newPage();
  // The page itself records how its first WebSocket ends the handshake: the close code and
  // reason are only visible to it. Watching the socket through the browser's events instead
  // once missed a handshake the page showed as done ("Connected"), for a reason not found;
  // the page's own record does not depend on those events, and if the page reloads (its
  // service worker can ask it to), the new document records its own socket. Page-side code
  // is a string: the test's own types are Node's, not the DOM's.
  await page.addInitScript({
    content: `{
      const Native = window.WebSocket;
      window.wsOutcome = undefined;
      window.WebSocket = class extends Native {
        constructor(url, protocols) {
          super(url, protocols);
          let error;
          this.addEventListener('message', (e) => {
            let frame;
            try { frame = JSON.parse(String(e.data)); } catch { return; }
            if (frame?.type !== 'res') return;
            if (frame.ok && frame.payload?.type === 'hello-ok') window.wsOutcome ??= { kind: 'hello-ok', auth: frame.payload.auth };
            else if (frame.ok === false && error === undefined) error = frame.error?.message;
          });
          this.addEventListener('close', (e) => (window.wsOutcome ??= { kind: 'closed', code: e.code, reason: e.reason, error }));
        }
      };
    }`,
  });
  await signIn(page, user);
  // Read from whichever document the page is on (a read during a reload fails and is tried again).
  const settled = await waitFor(
    () => page.evaluate<Outcome | undefined>('window.wsOutcome'),
    'a WebSocket of the Control UI to end its handshake',
    45_000,
    100,
  ).catch(async (err: Error) => {
    // Where the browser stopped: the page it is on and what that page says.
    const text = await page.evaluate<string>('document.body ? document.body.innerText : ""').catch((e: Error) => `(unreadable: ${e.message})`);
    throw new Error(`${err.message}; the browser is at ${page.url()}, which says: ${JSON.stringify(text.slice(0, 400))}`);
  });
  const post = (path: string) =>
    page.evaluate(async (p) => {
      const res = await fetch(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      return { status: res.status, body: await res.text() };
    }, path);
  return { page, outcome: settled, post };
}

function scopesOf(outcome: Outcome): string[] {
  if (outcome.kind !== 'hello-ok') throw new Error(`expected hello-ok, got ${JSON.stringify(outcome)}`);
  return [...outcome.auth.scopes].sort();
}

async function sidecarMetrics(): Promise<string> {
  return stack.pod.exec('curl', ['-s', '--max-time', '5', 'http://127.0.0.1:9090/metrics']);
}

let alice: UiVisit;

test('1. a user signs in through the form and the real Control UI connects on first visit, with no pairing step', async () => {
  alice = await visit('alice');
  expect(alice.outcome).toMatchObject({ kind: 'hello-ok', auth: { method: 'trusted-proxy', role: 'operator' } });
  expect(scopesOf(alice.outcome)).toEqual(POLICY_SCOPES);
  // The UI shows who is signed in, and the gateway never asked for pairing.
  await alice.page.getByText('alice', { exact: true }).first().waitFor({ timeout: 20_000 });
  expect(await alice.page.getByText('Approve this browser').count()).toBe(0);
  expect(stack.gatewayOutput()).not.toContain('pairing required');
  await alice.page.screenshot({ path: join(ARTIFACTS, 'case1-control-ui.png') });
});

test('2. a read-only group gets a session capped to operator.read, and the gateway refuses an HTTP call that needs write', async () => {
  const bob = await visit('bob');
  expect(bob.outcome).toMatchObject({ kind: 'hello-ok', auth: { method: 'trusted-proxy' } });
  expect(scopesOf(bob.outcome)).toEqual(['operator.read']);

  const refused = await bob.post('/tools/invoke');
  expect(refused.status).toBe(403);
  expect(JSON.parse(refused.body)).toMatchObject({ error: { message: 'missing scope: operator.write' } });
  // The same call passes the scope check for a user with write (and fails later, on the empty body).
  const allowed = await alice.post('/tools/invoke');
  expect(allowed.status).toBe(400);
  expect(allowed.body).toContain('tools.invoke requires name');
  await bob.page.getByText('bob', { exact: true }).first().waitFor({ timeout: 20_000 });
  await bob.page.screenshot({ path: join(ARTIFACTS, 'case2-read-only.png') });
  await bob.page.context().close();
});

test("3. a browser on another host that reaches the sidecar, or the gateway's own port, directly with forged identity headers never reaches the gateway", async () => {
  const rogueBrowser = await stack.launchBrowser(stack.rogue);
  const context = await rogueBrowser.newContext({
    extraHTTPHeaders: {
      'x-auth-request-email': 'alice@example.com',
      'x-auth-request-groups': 'claw-users',
      'x-forwarded-user': 'alice@example.com',
      'x-forwarded-for': '203.0.113.7',
      'x-openclaw-scopes': 'operator.admin',
    },
  });
  const page = await context.newPage();
  const sidecarUrl = `http://${stack.pod.address}:8080`;
  const outputBefore = stack.gatewayOutput().length;

  const res = await page.goto(`${sidecarUrl}/`);
  expect(res!.status()).toBe(403);
  expect(await res!.text()).toBe('{"error":"untrusted_source"}');
  /** How a WebSocket the page opens to `url` ends. */
  const webSocketTo = (url: string) =>
    page.evaluate(
      (target) =>
        new Promise<{ code: number; opened: boolean }>((resolve) => {
          const socket = new WebSocket(target);
          let opened = false;
          socket.onopen = () => (opened = true);
          socket.onclose = (e) => resolve({ code: e.code, opened });
        }),
      url.replace('http:', 'ws:'),
    );
  expect(await webSocketTo(sidecarUrl)).toEqual({ code: 1006, opened: false });
  // Around the sidecar: the gateway is bound beyond loopback here, and the guard in its
  // process answers for it; the page, a WebSocket and an Expect request never reach its code.
  const gatewayUrl = `http://${stack.pod.address}:${GATEWAY_PORT}`;
  const direct = await page.goto(`${gatewayUrl}/`);
  expect(direct!.status()).toBe(401);
  expect(await direct!.text()).toBe('{"error":"assertion_missing"}');
  expect(await webSocketTo(gatewayUrl)).toEqual({ code: 1006, opened: false });
  const expectContinue = stack.rogue.exec('curl', [
    '-s',
    '-i',
    '-X',
    'POST',
    '-H',
    'Expect: 100-continue',
    '-H',
    'X-Forwarded-User: alice@example.com',
    '--data-binary',
    '{"method":"x"}',
    `${gatewayUrl}/api/x`,
  ]);
  expect(expectContinue).toMatch(/^HTTP\/1\.1 401/);
  expect(expectContinue).not.toContain('100 Continue');
  expect(stack.gatewayOutput()).toMatch(/"msg":"trusted-proxy-sidecar guard refused"/);

  // The page, its favicon and the WebSocket: each refused at the source stage. The sidecar
  // logs asynchronously, so wait (bounded) for the last line before reading them.
  const rogueLines = () => stack.sidecarLogs().filter((l) => l['peer'] === stack.rogue.address);
  await waitFor(() => rogueLines().filter((l) => l['path'] === '/').length >= 2, 'both refusals of / logged', 5000);
  const fromRogue = rogueLines();
  expect(fromRogue.length).toBeGreaterThanOrEqual(2);
  expect(new Set(fromRogue.map((l) => `${l['msg']} ${l['reason']}`))).toEqual(new Set(['refused untrusted_source']));
  expect(fromRogue.filter((l) => l['path'] === '/')).toHaveLength(2);
  // The guard's own log line names the host; nothing of the gateway's does.
  const gatewayLines = stack.gatewayOutput().slice(outputBefore).split('\n');
  expect(gatewayLines.filter((l) => l.includes(stack.rogue.address) && !l.includes('trusted-proxy-sidecar guard refused'))).toEqual([]);
  await rogueBrowser.close();
});

test('4. a forged x-openclaw-scopes: operator.admin sent through the real proxy never reaches the gateway', async () => {
  const strippedBefore = sample(await sidecarMetrics(), 'trusted_proxy_headers_stripped_total', { header: 'x-openclaw-scopes' });
  const forger = await visit('alice', { 'x-openclaw-scopes': 'operator.admin' });
  expect(forger.outcome).toMatchObject({ kind: 'hello-ok', auth: { method: 'trusted-proxy' } });
  expect(scopesOf(forger.outcome)).toEqual(POLICY_SCOPES);

  // Killing a session needs operator.admin: the gateway answers as for the policy's scopes.
  const kill = await forger.post('/sessions/agent%3Adefault%3Amain/kill');
  expect(kill.status).toBe(403);
  expect(JSON.parse(kill.body)).toMatchObject({ error: { message: 'missing scope: operator.admin' } });
  expect(sample(await sidecarMetrics(), 'trusted_proxy_headers_stripped_total', { header: 'x-openclaw-scopes' })).toBeGreaterThan(strippedBefore);

  // Control: the same header, had it reached the gateway, would have made the caller admin
  // (OpenClaw verifies nothing itself): past the scope check, the session is simply not
  // found. Inside the pod, with the sidecar's key, the test mints the assertion the guard needs
  // (which must grant the scopes the header names: the guard holds the header to them).
  const killPath = '/sessions/agent%3Adefault%3Amain/kill';
  const direct = stack.pod.exec('curl', [
    '-s',
    '--max-time',
    '10',
    '-X',
    'POST',
    '-w',
    '\n%{http_code}',
    '-H',
    'x-forwarded-user: alice@example.com',
    '-H',
    'x-forwarded-proto: https',
    '-H',
    'x-forwarded-for: 203.0.113.7',
    '-H',
    `x-trusted-proxy-assertion: ${stack.mintAssertion('alice@example.com', 'POST', `https://127.0.0.1:${GATEWAY_PORT}${killPath}`, 'operator.admin')}`,
    '-H',
    'x-openclaw-scopes: operator.admin',
    `http://127.0.0.1:${GATEWAY_PORT}${killPath}`,
  ]);
  const [directBody, directStatus] = [direct.slice(0, direct.lastIndexOf('\n')), direct.slice(direct.lastIndexOf('\n') + 1)];
  // Past the guard (not 401) and past the scope check.
  expect(directStatus).not.toBe('401');
  expect(directBody).not.toContain('missing scope');
  expect(directBody).not.toContain('assertion_');
  await forger.page.context().close();
});

test('5. with deviceAutoApprove off the seed\'s exact failure comes back ("pairing required"), and doctor names it', async () => {
  await stack.editGatewayConfig((config) => (config['gateway'].auth.trustedProxy.deviceAutoApprove.enabled = false));
  const outputBefore = stack.gatewayOutput().length;
  const denied = await visit('alice');
  // As in the seed report: the reason, then the request id.
  expect(denied.outcome).toEqual({
    kind: 'closed',
    code: 1008,
    reason: expect.stringMatching(new RegExp(`^${PAIRING_REQUIRED} \\(requestId: [0-9a-f-]+\\)$`)),
    error: expect.stringContaining(PAIRING_REQUIRED),
  });
  // The gateway logs the same line the seed report quotes (written after the close, so wait
  // for it, bounded; other pages still open may log in between).
  const seedLine = new RegExp(`closed before connect .* code=1008 reason=${PAIRING_REQUIRED}`);
  await waitFor(() => seedLine.test(stack.gatewayOutput().slice(outputBefore)), "the gateway to log the seed report's line", 10_000);
  await denied.page.getByText('Approve this browser').waitFor({ timeout: 20_000 });
  await denied.page.screenshot({ path: join(ARTIFACTS, 'case5-pairing-required.png') });

  const doctor = stack.cli([
    'doctor',
    '--config',
    stack.sidecarConfigPath,
    '--gateway-config',
    stack.gatewayConfigPath,
    '--public-origin',
    PUBLIC_ORIGIN,
    '--json',
  ]);
  expect(doctor.code).toBe(2);
  const report = JSON.parse(doctor.stdout) as { findings: { code: string; userSees: string }[] };
  // The seed's autoApproveCidrs are still there, and now again relied on in vain.
  expect(report.findings.map((f) => f.code).sort()).toEqual(['auto_approve_cidrs_for_browsers', 'device_auto_approve_off']);
  expect(report.findings.find((f) => f.code === 'device_auto_approve_off')!.userSees).toContain(PAIRING_REQUIRED);
});

test('6. a user the provider signs in but no allow list admits is refused by the sidecar, and nothing of theirs reaches the gateway', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const outputBefore = stack.gatewayOutput().length;
  await signIn(page, 'mallory');
  // Back through oauth2-proxy's callback to the page first asked for: the sidecar's answer.
  await page.waitForURL(`${PUBLIC_ORIGIN}/`, { timeout: 30_000 });
  expect(await page.textContent('body')).toBe('{"error":"user_not_allowed"}');
  await page.screenshot({ path: join(ARTIFACTS, 'case6-not-allowed.png') });

  const refusals = () => stack.sidecarLogs().filter((l) => l['reason'] === 'user_not_allowed' && l['path'] === '/');
  await waitFor(() => refusals().length >= 1, 'the refusal to be logged', 5000);
  expect(refusals()[0]).toMatchObject({ msg: 'refused', peer: stack.ingress.address });
  expect(stack.gatewayOutput().slice(outputBefore)).not.toContain('mallory');
  await context.close();
});

test("7. a webhook: through Traefik with the gateway's hook token and no session, to the real gateway under the guard; forged, confused or from a rogue pod, nothing", async () => {
  const wake = (path: string, headers: Record<string, string>) =>
    stack.publicRequest(
      path,
      { 'content-type': 'application/json', ...headers },
      { method: 'POST', body: '{"text":"from the e2e suite","mode":"next-heartbeat"}' },
    );
  // The hook passes with the gateway's own token, though it has no SSO session.
  const ok = await wake('/hooks/wake', { authorization: `Bearer ${HOOK_TOKEN}` });
  expect(ok.status).toBe(200);
  expect(JSON.parse(ok.body)).toMatchObject({ ok: true, mode: 'next-heartbeat' });
  const passed = stack.sidecarLogs().filter((l) => l['msg'] === 'allowed' && l['path'] === '/hooks/wake');
  expect(passed.at(-1)).toMatchObject({ user: 'route:hooks', peer: stack.ingress.address });

  // A wrong token gets the gateway's own 401: the sidecar let the request through, and the
  // gateway authenticated it; a forged identity beside it changes nothing.
  const wrong = await wake('/hooks/wake', {
    authorization: 'Bearer not-the-token',
    'x-auth-request-email': 'alice@example.com',
    'x-forwarded-user': 'alice@example.com',
  });
  expect(wrong.status).toBe(401);
  expect(wrong.body).not.toContain('assertion_');

  // Paths that read two ways. Traefik cleans some itself (it merges slashes and resolves
  // dot segments, so /hooks/../api/x goes to its SSO router) and refuses encoded dots;
  // whatever it passes on, the sidecar lets through only what reads as the route: every
  // request that passed as route:hooks had a plain path under /hooks.
  const statuses: Record<string, number> = {};
  for (const path of ['/hooks/../api/x', '/hooks/%2e%2e/api/x', '/hooks//wake', '/hooks/wake/..%2f..%2fapi', '/hooks;x/wake', '/HOOKS/wake']) {
    statuses[path] = (await wake(path, { authorization: `Bearer ${HOOK_TOKEN}` })).status;
  }
  expect(statuses['/hooks/../api/x']).toBe(302);
  const asRoute = stack.sidecarLogs().filter((l) => l['msg'] === 'allowed' && l['user'] === 'route:hooks');
  expect(asRoute.length).toBeGreaterThanOrEqual(2);
  for (const line of asRoute) expect(line['path']).toMatch(/^\/hooks\/[a-z]+$/);

  // A rogue pod straight to the sidecar, with the token: refused at the source stage.
  const rogue = stack.rogue.exec('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-X',
    'POST',
    '-H',
    `authorization: Bearer ${HOOK_TOKEN}`,
    '--data-binary',
    '{"text":"rogue"}',
    `http://${stack.pod.address}:8080/hooks/wake`,
  ]);
  expect(rogue).toBe('403');
  // The Control UI still needs SSO: the same caller on / is sent to sign in.
  const ui = await stack.publicRequest('/', {});
  expect(ui.status).toBe(302);
});

test("8. the OpenClaw CLI inside the pod reaches the gateway under the guard with the gateway's password; with identity or forwarding headers it needs an assertion", async () => {
  // The real CLI, in the pod, as `kubectl exec` into the gateway container runs it.
  const health = await stack.openclawCli(['health', '--json', '--timeout', '20000'], { OPENCLAW_GATEWAY_PASSWORD: LOCAL_PASSWORD });
  expect({ code: health.code, ok: /"ok":\s*true/.test(health.output) }).toEqual({ code: 0, ok: true });
  // From another container's view (no state, only the URL and a password), the password is
  // what counts: the gateway itself refuses a wrong one, after the guard let it through to ask.
  const elsewhere = {
    HOME: join(stack.dir, 'cli-home'),
    OPENCLAW_STATE_DIR: join(stack.dir, 'cli-state'),
    OPENCLAW_CONFIG_PATH: join(stack.dir, 'cli-state', 'openclaw.json'),
  };
  mkdirSync(elsewhere.HOME, { recursive: true });
  mkdirSync(elsewhere.OPENCLAW_STATE_DIR, { recursive: true });
  const url = `ws://127.0.0.1:${GATEWAY_PORT}`;
  const right = await stack.openclawCli(['gateway', 'health', '--url', url, '--password', LOCAL_PASSWORD, '--json'], elsewhere);
  expect({ code: right.code, ok: /"ok":\s*true/.test(right.output) }).toEqual({ code: 0, ok: true });
  const wrong = await stack.openclawCli(['gateway', 'health', '--url', url, '--password', 'not-the-password', '--json'], elsewhere);
  expect(wrong.code).not.toBe(0);
  // A loopback request that names a user or carries forwarding evidence is no local client:
  // the guard asks for an assertion, as for anyone.
  for (const header of ['x-forwarded-user: alice@example.com', 'x-forwarded-for: 203.0.113.9', 'x_forwarded_proto: https', 'forwarded: for=1.2.3.4']) {
    const status = stack.pod.exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', header, `http://127.0.0.1:${GATEWAY_PORT}/api/x`]);
    expect({ header, status }).toEqual({ header, status: '401' });
  }
});
