// The command as users run it (`node dist/cli/main.js …`): help on every subcommand, config
// checking with every problem listed, key generation, and token verification.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadKeyRing } from '../../src/assertion/keys.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../support/upstream.js';

const MAIN = resolve('dist/cli/main.js');
let dir: string;

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "make build" (make test builds before jest runs)`);
  dir = mkdtempSync(join(tmpdir(), 'tps-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('help', () => {
  const top = () => cli('--help');
  const commands = (): string[] => [...top().stdout.matchAll(/^ {2}([a-z][a-z-]*) {2,}\S/gm)].map((m) => m[1]!);

  test('the top-level help lists the subcommands', () => {
    const help = top();
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: trusted-proxy-sidecar <command>/);
    expect(commands()).toEqual(expect.arrayContaining(['serve', 'check-config', 'verify', 'keygen']));
  });

  test('--help (or -h) works on every subcommand, exit 0, print its usage', () => {
    const names = commands();
    names.forEach((name, i) => {
      // Both spellings are the same option; alternate rather than double the process count.
      const flag = i % 2 === 0 ? '--help' : '-h';
      const r = cli(name, flag);
      expect({ name, flag, status: r.status, stderr: r.stderr }).toEqual({ name, flag, status: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^trusted-proxy-sidecar ${name}\\b`));
    });
  });

  test('no command, an unknown command or an unknown option: usage on stderr, exit 2', () => {
    expect(cli()).toMatchObject({ status: 2 });
    const unknown = cli('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command: frobnicate');
    const option = cli('keygen', '--no-such-option');
    expect(option.status).toBe(2);
    expect(option.stderr).toMatch(/^keygen: .*no-such-option/);
  });
});

describe('check-config and serve on a bad file', () => {
  const bad = () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(
      path,
      [
        'listen: { port: 70000 }',
        'upstream: { url: "ftp://gateway" }',
        'trust: { cidrs: ["10.0.0.0/33", "not-an-address"] }',
        'identity: { allowUsers: alice, userHeader: "x user" }',
        'assertion: { ttlSeconds: 0 }',
        'logging: { level: chatty }',
        'surprise: true',
      ].join('\n'),
    );
    return path;
  };
  const paths = ['listen.port', 'upstream.url', 'trust.cidrs.0', 'trust.cidrs.1', 'identity.allowUsers', 'identity.userHeader', 'assertion.ttlSeconds', 'logging.level', '(root)'];

  test('check-config lists every problem by key path and exits 2', () => {
    const path = bad();
    const r = cli('check-config', '--config', path);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')[0]).toBe(`invalid config ${path}:`);
    const problems = r.stderr.split('\n').filter((l) => l.startsWith('  - ')).map((l) => l.slice(4));
    for (const p of paths) expect(problems.some((line) => line.startsWith(`${p}: `))).toBe(true);
    expect(problems.find((l) => l.startsWith('(root)'))).toContain('surprise');
  });

  test('serve refuses the same file with the same list and exit 2, without listening', () => {
    const path = bad();
    const checked = cli('check-config', '--config', path);
    const served = cli('serve', '--config', path);
    expect(served.status).toBe(2);
    expect(served.stderr).toBe(checked.stderr);
    expect(served.stdout).not.toContain('listening');
  });

  test('a missing file and a YAML syntax error are refused the same way', () => {
    const missing = cli('check-config', '--config', join(dir, 'nope.yaml'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('ENOENT');
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'listen: { port: 8080\n');
    expect(cli('check-config', '--config', broken).status).toBe(2);
    expect(cli('serve', '--config', broken).status).toBe(2);
  });

  test('a good file: "ok" and exit 0; with --keys a key folder without a key exits 2', () => {
    const path = join(dir, 'good.yaml');
    writeFileSync(path, `assertion: { keysDir: ${JSON.stringify(join(dir, 'empty-keys'))} }\n`);
    expect(cli('check-config', '--config', path)).toEqual({ status: 0, stdout: 'ok\n', stderr: '' });
    const keys = cli('check-config', '--config', path, '--keys');
    expect(keys.status).toBe(2);
    expect(keys.stderr).toContain('assertion: keysDir');
  });
});

describe('keygen', () => {
  test('writes 32 random bytes, mode 0400, that the sidecar loads; refuses to overwrite', () => {
    const keysDir = join(dir, 'keys');
    const r = cli('keygen', '--keys-dir', keysDir, '--kid', 'k2026');
    expect(r).toEqual({ status: 0, stdout: `${join(keysDir, 'k2026')}\n`, stderr: '' });
    const file = join(keysDir, 'k2026');
    const bytes = readFileSync(file);
    expect(bytes).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o400);
    expect(loadKeyRing(keysDir, '')).toMatchObject({ activeKeyId: 'k2026', problems: [] });

    const again = cli('keygen', '--keys-dir', keysDir, '--kid', 'k2026');
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('exists');
    expect(readFileSync(file).equals(bytes)).toBe(true);

    // Two keys are random, not the same bytes.
    expect(cli('keygen', '--keys-dir', keysDir, '--kid', 'k2027').status).toBe(0);
    expect(readFileSync(join(keysDir, 'k2027')).equals(bytes)).toBe(false);
  });

  test('a key id that is not a safe file name is refused', () => {
    for (const kid of ['../escape', '.hidden']) {
      expect(cli('keygen', '--keys-dir', join(dir, 'keys-bad'), '--kid', kid).status).toBe(2);
    }
    expect(existsSync(join(dir, 'escape'))).toBe(false);
  });
});

describe('verify', () => {
  let upstream: RecordingUpstream;
  let sc: TestSidecar;
  let token: string;

  beforeAll(async () => {
    upstream = await startRecordingUpstream();
    sc = await startSidecar(upstream.url);
    await (await fetch(`${sc.url}/docs/x?q=1`, { method: 'POST', headers: { 'x-auth-request-email': 'alice@example.com' } })).text();
    token = upstream.valuesOf(upstream.received[0]!, 'x-trusted-proxy-assertion')[0]!;
  });
  afterAll(async () => {
    await sc.stop();
    await upstream.close();
  });

  test('prints the claims of a token the sidecar sent, exit 0', () => {
    const r = cli('verify', '--keys-dir', sc.keysDir, token);
    expect(r.status).toBe(0);
    const claims = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(claims).toMatchObject({ sub: 'alice@example.com', htm: 'POST', htu: `http://127.0.0.1:${sc.port}/docs/x`, kid: 'k1', iss: 'trusted-proxy-sidecar', aud: 'gateway' });
    const bound = cli('verify', '--keys-dir', sc.keysDir, '--method', 'POST', '--uri', `http://127.0.0.1:${sc.port}/docs/x`, token);
    expect(bound.status).toBe(0);
  });

  test('exits 1 with the reason for a bad token', () => {
    const [h, p, s] = token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
    const cases: Array<[string[], string]> = [
      [[flipped], 'signature'],
      [['not-a-token'], 'malformed'],
      [['--audience', 'someone-else', token], 'audience'],
      [['--issuer', 'someone-else', token], 'issuer'],
      [['--method', 'GET', '--uri', `http://127.0.0.1:${sc.port}/docs/x`, token], 'method'],
      [['--method', 'POST', '--uri', `http://127.0.0.1:${sc.port}/other`, token], 'target'],
    ];
    for (const [args, code] of cases) {
      const r = cli('verify', '--keys-dir', sc.keysDir, ...args);
      expect({ args, status: r.status, stdout: r.stdout }).toEqual({ args, status: 1, stdout: '' });
      expect(r.stderr).toMatch(new RegExp(`^not valid: ${code}: `));
    }
    const otherKeys = join(dir, 'other-keys');
    expect(cli('keygen', '--keys-dir', otherKeys, '--kid', 'k9').status).toBe(0);
    expect(cli('verify', '--keys-dir', otherKeys, token).stderr).toMatch(/^not valid: unknown_key: /);
  });

  test('usage mistakes exit 2', () => {
    expect(cli('verify', token).status).toBe(2);
    expect(cli('verify', '--keys-dir', sc.keysDir, '--method', 'GET', token).status).toBe(2);
  });
});
