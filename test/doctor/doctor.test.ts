// `doctor` and `gateway-config`: the seed report's config is diagnosed with exactly its
// problems, a merged config is clean, and every finding has a case that provokes it alone.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import JSON5 from 'json5';
import { parseConfig } from '../../src/config/load.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/schema.js';
import { diagnose } from '../../src/doctor/doctor.js';
import { RULES } from '../../src/doctor/rules.js';
import { mergeGatewayConfig } from '../../src/openclaw/gateway-config.js';
import { COMMAND as CLI } from '../support/command.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'openclaw');
const ORIGIN = 'https://claw.example.com';
const seedText = readFileSync(join(FIXTURES, 'seed-config.json5'), 'utf8');
const seed = (): Record<string, any> => JSON5.parse(seedText);
const sidecarYaml = readFileSync(join(FIXTURES, 'sidecar.yaml'), 'utf8');

function sidecarConfig(): Config {
  const parsed = parseConfig(sidecarYaml);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.config;
}

/** The fixture sidecar with some keys replaced (one level deep per section). */
function sidecarWith(change: (input: Record<string, any>) => void): Config {
  const input = structuredClone(sidecarConfig()) as Record<string, any>;
  change(input);
  return configSchema.parse(input as ConfigInput);
}

const codes = (findings: { code: string }[]) => findings.map((f) => f.code).sort();

describe('doctor on the seed report', () => {
  test("finds the seed config's problems, each with path, what the user sees and the fix", () => {
    const findings = diagnose(sidecarConfig(), seed(), { publicOrigin: ORIGIN });
    expect(codes(findings)).toEqual(
      [
        'allow_loopback_off',
        'assertion_header_not_required',
        'auto_approve_cidrs_for_browsers',
        'bind_not_loopback',
        'device_auto_approve_off',
        'trusted_proxies_missing_loopback',
        'user_header_mismatch',
      ].sort(),
    );
    const pairing = findings.find((f) => f.code === 'device_auto_approve_off')!;
    expect(pairing).toMatchObject({ severity: 'error', path: 'openclaw:gateway.auth.trustedProxy.deviceAutoApprove.enabled' });
    // The seed's exact log line is what the finding tells the user to expect.
    const logged = /reason=(pairing required: device is not approved yet)/.exec(readFileSync(join(FIXTURES, 'seed-log.txt'), 'utf8'))![1]!;
    expect(pairing.userSees).toContain(logged);
    const header = findings.find((f) => f.code === 'user_header_mismatch')!;
    expect(header.problem).toContain('the sidecar strips');
    for (const f of findings) {
      expect(f.path).toMatch(/^(openclaw|sidecar):/);
      for (const text of [f.problem, f.userSees, f.fix]) expect(text.length).toBeGreaterThan(10);
    }
  });

  test("with the sidecar's defaults (no scopes policy) it also says HTTP APIs default to admin", () => {
    const findings = diagnose(configSchema.parse({}), seed(), { publicOrigin: ORIGIN });
    const f = findings.find((x) => x.code === 'scopes_policy_missing')!;
    expect(f).toMatchObject({ severity: 'error', path: 'sidecar:gateway.scopesHeader' });
    expect(f.userSees).toContain('operator.admin');
  });
});

describe('gateway-config merge', () => {
  test('doctor is clean on the merged seed config and on a config merged from nothing', () => {
    const sidecar = sidecarConfig();
    expect(diagnose(sidecar, mergeGatewayConfig(seed(), sidecar, { publicOrigin: ORIGIN }), { publicOrigin: ORIGIN })).toEqual([]);
    expect(diagnose(sidecar, mergeGatewayConfig(undefined, sidecar, { publicOrigin: ORIGIN }), { publicOrigin: ORIGIN })).toEqual([]);
  });

  test('sets only the trust and auth keys and leaves the rest alone', () => {
    const sidecar = sidecarConfig();
    const before = seed();
    before.gateway.auth.token = 'left-over';
    before.gateway.controlUi.allowedOrigins.push('https://other.example.com');
    const merged = mergeGatewayConfig(before, sidecar, { publicOrigin: `${ORIGIN}/some/path` }) as Record<string, any>;
    expect(before.gateway.bind).toBe('lan'); // the input is not modified
    expect(merged.agents).toEqual(before.agents);
    expect(merged.cron).toEqual(before.cron);
    expect(merged.logging).toEqual(before.logging);
    expect(merged.gateway.nodes).toEqual(before.gateway.nodes);
    expect(merged.gateway).toMatchObject({ mode: 'local', bind: 'loopback', port: 18789, trustedProxies: ['127.0.0.1', '::1'] });
    expect(merged.gateway.auth).toEqual({
      mode: 'trusted-proxy',
      trustedProxy: {
        userHeader: 'x-forwarded-user',
        requiredHeaders: ['x-trusted-proxy-assertion', 'x-forwarded-proto'],
        allowUsers: [],
        allowLoopback: true,
        deviceAutoApprove: { enabled: true, scopes: ['operator.read', 'operator.write', 'operator.approvals', 'operator.questions'] },
      },
    });
    expect(merged.gateway.controlUi).toEqual({ enabled: true, allowedOrigins: [ORIGIN, 'https://other.example.com'] });
    expect(mergeGatewayConfig(merged, sidecar, { publicOrigin: ORIGIN })).toEqual(merged);
  });

  test('refuses settings that could not work or would grant admin', () => {
    const sidecar = sidecarConfig();
    const merge =
      (existing: unknown, options: Partial<Parameters<typeof mergeGatewayConfig>[2]>, sc = sidecar) =>
      () =>
        mergeGatewayConfig(existing, sc, { publicOrigin: ORIGIN, ...options });
    expect(merge({}, { deviceAutoApproveScopes: ['operator.read', 'operator.admin'] })).toThrow(/operator.admin/);
    expect(merge({}, { port: 28789 })).toThrow(/port 28789/);
    expect(merge({}, { publicOrigin: 'claw.example.com' })).toThrow(/not an http/);
    expect(merge([], {})).toThrow(/not an object/);
    expect(merge({ gateway: { auth: 'x' } }, {})).toThrow(/gateway.auth is not an object/);
    expect(
      merge(
        {},
        {},
        sidecarWith((c) => (c.upstream.url = 'http://10.0.0.1:18789')),
      ),
    ).toThrow(/not on loopback/);
    expect(
      merge(
        {},
        {},
        sidecarWith((c) => (c.gateway.userHeader = '')),
      ),
    ).toThrow(/no user header/);
    const custom = mergeGatewayConfig({}, sidecar, { publicOrigin: ORIGIN, deviceAutoApproveScopes: ['operator.read'], port: 18789 }) as Record<string, any>;
    expect(custom.gateway.auth.trustedProxy.deviceAutoApprove).toEqual({ enabled: true, scopes: ['operator.read'] });
  });
});

describe('each finding alone', () => {
  type Case = {
    code: string;
    severity: 'error' | 'warning';
    gateway?: (g: Record<string, any>) => void;
    sidecar?: (c: Record<string, any>) => void;
    publicOrigin?: string;
  };
  const cases: Case[] = [
    { code: 'trusted_cidr_too_broad', severity: 'error', sidecar: (c) => (c.trust.cidrs = ['10.244.0.1/32', '10.233.64.0/18']) },
    { code: 'trusted_cidr_too_broad', severity: 'error', sidecar: (c) => (c.trust.cidrs = ['fd00:10:244::/64']) },
    {
      code: 'loopback_trusted_by_address',
      severity: 'error',
      sidecar: (c) => {
        c.trust.allowLoopback = true;
        c.trust.cidrs = ['127.0.0.6'];
      },
    },
    {
      code: 'xfcc_trusts_every_container',
      severity: 'warning',
      sidecar: (c) => {
        c.trust.allowLoopback = true;
        c.trust.cidrs = ['127.0.0.6'];
        c.trust.require = 'both';
        c.trust.clientCertificates.from = 'xfcc';
        c.trust.clientCertificates.spiffeIds = ['spiffe://cluster.local/ns/traefik/sa/traefik'];
      },
    },
    { code: 'gateway_mode_not_local', severity: 'error', gateway: (g) => delete g.gateway.mode },
    { code: 'bind_not_loopback', severity: 'error', gateway: (g) => (g.gateway.bind = 'lan') },
    { code: 'port_mismatch', severity: 'error', gateway: (g) => (g.gateway.port = 28789) },
    { code: 'port_mismatch', severity: 'error', gateway: (g) => delete g.gateway.port, sidecar: (c) => (c.upstream.url = 'http://127.0.0.1:28789') },
    { code: 'sidecar_upstream_not_loopback', severity: 'error', sidecar: (c) => (c.upstream.url = 'http://10.1.2.3:18789') },
    { code: 'auth_mode_not_trusted_proxy', severity: 'error', gateway: (g) => (g.gateway.auth.mode = 'token') },
    { code: 'auth_token_with_trusted_proxy', severity: 'error', gateway: (g) => (g.gateway.auth.token = 'secret') },
    { code: 'trusted_proxies_missing_loopback', severity: 'error', gateway: (g) => (g.gateway.trustedProxies = ['::1', '10.0.0.0/8']) },
    { code: 'trusted_proxies_missing_loopback', severity: 'error', gateway: (g) => delete g.gateway.trustedProxies },
    { code: 'allow_loopback_off', severity: 'error', gateway: (g) => (g.gateway.auth.trustedProxy.allowLoopback = false) },
    {
      code: 'required_header_not_sent',
      severity: 'error',
      gateway: (g) => g.gateway.auth.trustedProxy.requiredHeaders.push('x-forwarded-prefix'),
    },
    {
      code: 'required_header_not_sent',
      severity: 'error',
      // Blank for users with no mapped group, and OpenClaw requires a non-blank value.
      gateway: (g) => g.gateway.auth.trustedProxy.requiredHeaders.push('x-openclaw-scopes'),
      sidecar: (c) => (c.gateway.scopes.default = []),
    },
    {
      code: 'assertion_header_not_required',
      severity: 'warning',
      gateway: (g) => (g.gateway.auth.trustedProxy.requiredHeaders = ['x-forwarded-proto']),
    },
    { code: 'user_header_mismatch', severity: 'error', gateway: (g) => (g.gateway.auth.trustedProxy.userHeader = 'x-remote-user') },
    { code: 'sidecar_user_header_off', severity: 'error', sidecar: (c) => (c.gateway.userHeader = '') },
    { code: 'allow_users_case', severity: 'warning', gateway: (g) => (g.gateway.auth.trustedProxy.allowUsers = ['Alice@Example.com']) },
    {
      code: 'allow_users_case',
      severity: 'warning',
      gateway: (g) => (g.gateway.auth.trustedProxy.allowUsers = ['bob@example.com']),
      sidecar: (c) => (c.identity.allowUsers = ['Bob@example.com']),
    },
    { code: 'device_auto_approve_off', severity: 'error', gateway: (g) => (g.gateway.auth.trustedProxy.deviceAutoApprove.enabled = false) },
    { code: 'device_auto_approve_off', severity: 'error', gateway: (g) => delete g.gateway.auth.trustedProxy.deviceAutoApprove },
    {
      code: 'device_auto_approve_admin',
      severity: 'error',
      gateway: (g) => g.gateway.auth.trustedProxy.deviceAutoApprove.scopes.push('operator.admin'),
    },
    { code: 'allowed_origins_mismatch', severity: 'error', gateway: (g) => (g.gateway.controlUi.allowedOrigins = ['https://old.example.com']) },
    { code: 'allowed_origins_mismatch', severity: 'error', gateway: (g) => delete g.gateway.controlUi },
    {
      code: 'sidecar_origin_mismatch',
      severity: 'error',
      gateway: (g) => g.gateway.controlUi.allowedOrigins.push('https://new.example.com'),
      publicOrigin: 'https://new.example.com',
    },
    { code: 'scopes_policy_missing', severity: 'error', sidecar: (c) => (c.gateway.scopesHeader = '') },
    { code: 'scopes_policy_missing', severity: 'error', sidecar: (c) => (c.gateway.scopesHeader = 'x-scopes') },
    { code: 'scopes_default_admin', severity: 'warning', sidecar: (c) => c.gateway.scopes.default.push('operator.admin') },
    { code: 'scopes_policy_empty', severity: 'warning', sidecar: (c) => (c.gateway.scopes = { default: [], byGroup: {} }) },
    { code: 'machine_route_over_ui_or_api', severity: 'error', sidecar: (c) => (c.routes = [{ name: 'api', path: '/v1/chat', mode: 'machine' }]) },
    { code: 'machine_route_over_ui_or_api', severity: 'error', sidecar: (c) => (c.routes = [{ name: 'ui', path: '/', match: 'exact', mode: 'machine' }]) },
    { code: 'machine_route_over_ui_or_api', severity: 'error', sidecar: (c) => (c.routes = [{ name: 'x', path: '/tools', mode: 'machine' }]) },
    { code: 'hooks_without_machine_route', severity: 'warning', gateway: (g) => (g.hooks = { enabled: true, token: 'x'.repeat(32) }) },
    {
      code: 'hooks_without_machine_route',
      severity: 'warning',
      gateway: (g) => (g.hooks = { enabled: true, token: 'x'.repeat(32), path: '/webhooks/' }),
      sidecar: (c) => (c.routes = [{ name: 'hooks', path: '/hooks', methods: ['POST'], mode: 'machine' }]),
    },
  ];

  test.each(cases.map((c, i) => [`${c.code} #${i}`, c] as const))('%s', (_name, c) => {
    const sidecar = sidecarWith(c.sidecar ?? (() => {}));
    const gateway = mergeGatewayConfig({}, sidecarConfig(), { publicOrigin: ORIGIN }) as Record<string, any>;
    c.gateway?.(gateway);
    const findings = diagnose(sidecar, gateway, { publicOrigin: c.publicOrigin ?? ORIGIN });
    expect(findings.map((f) => [f.code, f.severity])).toEqual([[c.code, c.severity]]);
  });

  test('every rule has a case here and its row in docs/openclaw.md, and the docs list no other', () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'openclaw.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `(\w+)` \| (error|warning) \|/gm)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual([['gateway_config_invalid', 'error'], ...RULES.map((r) => [r.code, r.severity])]);
    const provoked = new Set(cases.map((c) => c.code));
    for (const rule of RULES.filter((r) => r.code !== 'auto_approve_cidrs_for_browsers')) expect(provoked).toContain(rule.code);
  });

  test('a trusted CIDR is too broad past the bound: a /24 passes by default, a /23 does not unless the bound is raised', () => {
    const gateway = mergeGatewayConfig({}, sidecarConfig(), { publicOrigin: ORIGIN }) as Record<string, any>;
    const trusting = (cidrs: string[]) => sidecarWith((c) => (c.trust.cidrs = cidrs));
    expect(codes(diagnose(trusting(['10.0.0.0/24', '10.0.1.7']), gateway, { publicOrigin: ORIGIN }))).toEqual([]);
    expect(diagnose(trusting(['10.0.0.0/23']), gateway, { publicOrigin: ORIGIN })).toEqual([
      expect.objectContaining({ code: 'trusted_cidr_too_broad', path: 'sidecar:trust.cidrs[0]' }),
    ]);
    expect(codes(diagnose(trusting(['10.0.0.0/23']), gateway, { publicOrigin: ORIGIN, maxTrustedAddresses: 512 }))).toEqual([]);
  });

  test('autoApproveCidrs relied on for browsers is named beside the pairing error', () => {
    const gateway = mergeGatewayConfig({}, sidecarConfig(), { publicOrigin: ORIGIN }) as Record<string, any>;
    gateway.gateway.auth.trustedProxy.deviceAutoApprove.enabled = false;
    gateway.gateway.nodes = { pairing: { autoApproveCidrs: ['10.0.0.0/8'] } };
    expect(codes(diagnose(sidecarConfig(), gateway, { publicOrigin: ORIGIN }))).toEqual(['auto_approve_cidrs_for_browsers', 'device_auto_approve_off']);
  });

  test('a gateway config that is not an object is one error', () => {
    expect(codes(diagnose(sidecarConfig(), ['x']))).toEqual(['gateway_config_invalid']);
  });
});

describe('the CLI', () => {
  const run = promisify(execFile);
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tps-doctor-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  }

  test('gateway-config merges into the seed file atomically and doctor then exits 0; on the seed it exits 2', async () => {
    const sidecarPath = join(dir, 'sidecar.yaml');
    const gatewayPath = join(dir, 'openclaw.json');
    writeFileSync(sidecarPath, sidecarYaml);
    writeFileSync(gatewayPath, seedText);
    chmodSync(gatewayPath, 0o640);

    const before = await cli('doctor', '--config', sidecarPath, '--gateway-config', gatewayPath, '--public-origin', ORIGIN);
    expect(before.code).toBe(2);
    expect(before.stdout).toContain('ERROR device_auto_approve_off at openclaw:gateway.auth.trustedProxy.deviceAutoApprove.enabled');
    expect(before.stdout).toContain('user sees: on first visit the Control UI closes with "1008: pairing required: device is not approved yet"');
    const json = await cli('doctor', '--config', sidecarPath, '--gateway-config', gatewayPath, '--public-origin', ORIGIN, '--json');
    expect(json.code).toBe(2);
    const parsed = JSON.parse(json.stdout) as { errors: number; warnings: number; findings: { code: string }[] };
    expect(parsed).toMatchObject({ errors: 5, warnings: 2 });
    expect(parsed.findings).toHaveLength(7);

    const merged = await cli('gateway-config', '--config', sidecarPath, '--file', gatewayPath, '--public-origin', ORIGIN, '--port', '18789');
    expect(merged).toMatchObject({ code: 0, stdout: `updated ${gatewayPath}\n` });
    expect(readdirSync(dir).sort()).toEqual(['openclaw.json', 'sidecar.yaml']);
    expect(statSync(gatewayPath).mode & 0o777).toBe(0o640);
    expect(JSON.parse(readFileSync(gatewayPath, 'utf8')).agents).toEqual(seed().agents);

    const after = await cli('doctor', '--config', sidecarPath, '--gateway-config', gatewayPath, '--public-origin', ORIGIN);
    expect(after).toMatchObject({ code: 0, stdout: 'ok: the gateway config agrees with the sidecar\n' });
  });

  test('gateway-config starts from {} when the file is missing; doctor exits 1 on warnings only and 2 on bad input', async () => {
    const sidecarPath = join(dir, 'sidecar.yaml');
    const gatewayPath = join(dir, 'state', 'openclaw.json');
    writeFileSync(sidecarPath, sidecarYaml);
    expect((await cli('gateway-config', '--config', sidecarPath, '--file', gatewayPath, '--public-origin', ORIGIN)).code).toBe(0);
    expect(statSync(gatewayPath).mode & 0o777).toBe(0o600);

    const config = JSON.parse(readFileSync(gatewayPath, 'utf8')) as Record<string, any>;
    config.gateway.auth.trustedProxy.requiredHeaders = ['x-forwarded-proto'];
    writeFileSync(gatewayPath, JSON.stringify(config));
    const warned = await cli('doctor', '--config', sidecarPath, '--gateway-config', gatewayPath, '--public-origin', ORIGIN);
    expect(warned.code).toBe(1);
    expect(warned.stdout).toContain('WARNING assertion_header_not_required');

    expect((await cli('doctor', '--config', sidecarPath, '--gateway-config', join(dir, 'missing.json5'))).code).toBe(2);
    writeFileSync(join(dir, 'broken.json5'), '{ gateway: ');
    expect((await cli('doctor', '--config', sidecarPath, '--gateway-config', join(dir, 'broken.json5'))).code).toBe(2);
    expect((await cli('doctor', '--config', sidecarPath)).code).toBe(2);
    const refused = await cli(
      'gateway-config',
      '--config',
      sidecarPath,
      '--file',
      gatewayPath,
      '--public-origin',
      ORIGIN,
      '--auto-approve-scopes',
      'operator.admin',
    );
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('operator.admin');
  });
});

test('machine routes of the webhooks and a channel callback, with the hooks on, are clean', () => {
  const sidecar = sidecarWith((c) => {
    c.routes = [
      { name: 'hooks', path: '/hooks', methods: ['POST'], mode: 'machine' },
      { name: 'googlechat', path: '/googlechat', match: 'exact', methods: ['POST'], mode: 'machine' },
      { name: 'api-admin', path: '/api/admin', mode: 'deny' },
    ];
  });
  const gateway = mergeGatewayConfig({}, sidecarConfig(), { publicOrigin: ORIGIN }) as Record<string, any>;
  gateway.hooks = { enabled: true, token: 'x'.repeat(32), path: '/hooks' };
  expect(diagnose(sidecar, gateway, { publicOrigin: ORIGIN })).toEqual([]);
});
