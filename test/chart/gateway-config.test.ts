// The chart's init step, run for real: the init container's exact arguments, against
// the sidecar config the chart generates and a user's existing gateway config. The
// result must pass `doctor` cleanly and keep everything that is not trust/auth.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import JSON5 from 'json5';
import { CI_VALUES, ciValuesFiles, one, renderChart } from './k8s.js';
import { COMMAND as CLI } from '../support/command.js';

const VALUES = CI_VALUES;
let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tps-gwconfig-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

const SEED = join(import.meta.dirname, 'fixtures/openclaw-seed-config.json5');
const cases: [string, string | undefined][] = [...ciValuesFiles().map((f): [string, string | undefined] => [f, SEED]), ['defaults-values.yaml', undefined]];

describe.each(cases)('ci/%s', (file, seed) => {
  test(`gateway-config on ${seed ? "the user's existing config" : 'a fresh volume'}, then doctor is clean`, () => {
    const { objects } = renderChart([join(VALUES, file)]);
    const deployment = one(objects, 'Deployment') as any;
    const init = deployment.spec.template.spec.initContainers.find((c: any) => c.name === 'gateway-config');
    const configMap = one(objects, 'ConfigMap', 'claw-trusted-proxy-sidecar-sidecar') as any;
    const dir = mkdtempSync(join(tmp, 'pod-'));
    const sidecarConfig = join(dir, 'sidecar.yaml');
    writeFileSync(sidecarConfig, configMap.data['sidecar.yaml']);
    const stateFile = join(dir, 'openclaw.json');
    if (seed) copyFileSync(seed, stateFile);

    // The init container's own arguments, with its mount paths mapped onto the temp dir.
    const args = (init.args as string[]).map((a) =>
      a === '/etc/trusted-proxy-sidecar/config/sidecar.yaml' ? sidecarConfig : a === '/home/node/.openclaw/openclaw.json' ? stateFile : a,
    );
    expect(args).toContain(stateFile);
    const merged = cli(args);
    expect([merged.status, merged.stderr]).toEqual([0, '']);

    const doctor = cli(['doctor', '--config', sidecarConfig, '--gateway-config', stateFile, '--public-origin', 'https://claw.example.com']);
    expect([doctor.status, doctor.stderr]).toEqual([0, '']);

    const result = JSON5.parse(readFileSync(stateFile, 'utf8')) as any;
    expect(result.gateway.port).toBe(18789);
    expect(result.gateway.trustedProxies).toEqual(expect.arrayContaining(['127.0.0.1']));
    expect(result.gateway.auth.trustedProxy).toMatchObject({ userHeader: 'x-forwarded-user', allowLoopback: true });
    expect(result.gateway.auth.trustedProxy.requiredHeaders).toContain('x-trusted-proxy-assertion');
    expect(result.gateway.auth.trustedProxy.deviceAutoApprove.enabled).toBe(true);
    expect(result.gateway.auth.trustedProxy.deviceAutoApprove.scopes ?? []).not.toContain('operator.admin');
    expect(result.gateway.controlUi.allowedOrigins).toEqual(['https://claw.example.com']);
    if (seed) {
      const before = JSON5.parse(readFileSync(seed, 'utf8')) as any;
      expect(result.agents).toEqual(before.agents);
      expect(result.cron).toEqual(before.cron);
      expect(result.logging).toEqual(before.logging);
    }
  });
});

test('doctor catches the original misconfiguration, so the clean result above means something', () => {
  const { objects } = renderChart([join(VALUES, 'defaults-values.yaml')]);
  const sidecarConfig = join(tmp, 'defaults-sidecar.yaml');
  writeFileSync(sidecarConfig, (one(objects, 'ConfigMap', 'claw-trusted-proxy-sidecar-sidecar') as any).data['sidecar.yaml']);
  const r = cli([
    'doctor',
    '--config',
    sidecarConfig,
    '--gateway-config',
    join(import.meta.dirname, 'fixtures/openclaw-seed-config.json5'),
    '--public-origin',
    'https://claw.example.com',
  ]);
  expect(r.status).toBe(2);
});
