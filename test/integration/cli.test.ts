// The command as users run it (`node dist/sidecar.js …`): help on every subcommand, config
// checking with every problem listed, key generation, and token verification.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKeyRing, publicKeySet } from '../../src/assertion/keys.js';
import { AssertionSigner } from '../../src/assertion/sign.js';
import { startSidecar, type TestSidecar } from '../support/sidecar.js';
import { startRecordingUpstream, type RecordingUpstream } from '../../harness/upstream.js';
import { COMMAND as MAIN } from '../support/command.js';

let dir: string;

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "make build" (make test builds before jest runs)`);
  dir = mkdtempSync(join(tmpdir(), 'tps-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each run loads the whole command (about 0.6 s of CPU), so the cases here are chosen to
// cover every behaviour once; the verifier's other negative cases are unit-tested.
function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    execFile(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') fail(err);
      else done({ status: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

describe('help', () => {
  test('--help on the command and on every subcommand: exit 0, the usage on stdout', async () => {
    const top = await cli('--help');
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(/^usage: trusted-proxy-sidecar <command>/);
    const names = [...top.stdout.matchAll(/^ {2}([a-z][a-z-]*) {2,}\S/gm)].map((m) => m[1]!);
    expect(names).toEqual(expect.arrayContaining(['serve', 'check-config', 'verify', 'keygen']));
    // Both spellings are one option; alternate them rather than double the process count.
    const flags = names.map((_n, i) => (i % 2 === 0 ? '--help' : '-h'));
    const runs = await Promise.all(names.map((name, i) => cli(name, flags[i]!)));
    runs.forEach((r, i) => {
      expect({ name: names[i], status: r.status, stderr: r.stderr }).toEqual({ name: names[i], status: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^trusted-proxy-sidecar ${names[i]}\\b`));
    });
  });

  test('--version: the package version, exit 0; keygen is summarised with every algorithm', async () => {
    const [version, top] = await Promise.all([cli('--version'), cli('--help')]);
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(version).toEqual({ status: 0, stdout: `${pkg.version}\n`, stderr: '' });
    expect(top.stdout).toMatch(/^ {2}keygen +.*HS256, EdDSA or ES256/m);
  });

  test('an unknown command or option: usage on stderr, exit 2', async () => {
    const [unknown, option] = await Promise.all([cli('frobnicate'), cli('keygen', '--no-such-option')]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('unknown command: frobnicate');
    expect(option.status).toBe(2);
    expect(option.stderr).toMatch(/^keygen: .*no-such-option/);
  });
});

describe('check-config and serve', () => {
  const paths = [
    'listen.port',
    'upstream.url',
    'trust.cidrs.0',
    'trust.cidrs.1',
    'identity.allowUsers',
    'identity.userHeader',
    'assertion.ttlSeconds',
    'logging.level',
    '(root)',
  ];

  test('a bad file: every problem by key path, exit 2, from check-config and from serve (which does not start)', async () => {
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
    const [checked, served] = await Promise.all([cli('check-config', '--config', path), cli('serve', '--config', path)]);
    expect(checked.status).toBe(2);
    expect(checked.stdout).toBe('');
    expect(checked.stderr.split('\n')[0]).toBe(`invalid config ${path}:`);
    const problems = checked.stderr
      .split('\n')
      .filter((l) => l.startsWith('  - '))
      .map((l) => l.slice(4));
    for (const p of paths) expect({ p, listed: problems.some((line) => line.startsWith(`${p}: `)) }).toEqual({ p, listed: true });
    expect(problems.find((l) => l.startsWith('(root)'))).toContain('surprise');
    expect(served.status).toBe(2);
    expect(served.stderr).toBe(checked.stderr);
    expect(served.stdout).not.toContain('listening');
  });

  // A value no URL parser accepts, and files that do not exist, in one file: every problem
  // is listed in one pass, none of them is an exception that hides the others.
  test('"not a url", a missing key folder and missing TLS files are listed together, with the schema errors', async () => {
    const path = join(dir, 'files.yaml');
    const missing = join(dir, 'no-such-dir');
    writeFileSync(
      path,
      [
        'upstream: { url: "not a url" }',
        `listen: { certFile: ${JSON.stringify(join(missing, 'tls.crt'))}, keyFile: ${JSON.stringify(join(missing, 'tls.key'))} }`,
        `assertion: { keysDir: ${JSON.stringify(missing)} }`,
        'logging: { level: chatty }',
      ].join('\n'),
    );
    const [checked, served] = await Promise.all([cli('check-config', '--config', path, '--keys'), cli('serve', '--config', path)]);
    expect(checked.status).toBe(2);
    const problems = checked.stderr
      .split('\n')
      .filter((l) => l.startsWith('  - '))
      .map((l) => l.slice(4));
    expect(problems).toEqual([
      'upstream.url: must be an http:// or https:// URL',
      'logging.level: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"',
      `listen.certFile: cannot read ${join(missing, 'tls.crt')} (ENOENT)`,
      `listen.keyFile: cannot read ${join(missing, 'tls.key')} (ENOENT)`,
      `assertion: keysDir ${missing}: cannot read (ENOENT)`,
    ]);
    expect(checked.stderr).not.toContain('Invalid URL');
    // serve checks the TLS files it must open; a key folder may appear later (not ready till then).
    expect(served.status).toBe(2);
    expect(served.stderr).toContain('listen.certFile: cannot read');
    expect(served.stderr).not.toContain('assertion: keysDir');
  });

  test('a missing file and a YAML syntax error are refused the same way; the syntax error shows where, under the problem', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'listen:\n  port: [\nupstream: { url: http://127.0.0.1:1 }\n');
    const [missing, syntax] = await Promise.all([cli('check-config', '--config', join(dir, 'nope.yaml')), cli('serve', '--config', broken)]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('ENOENT');
    expect(syntax.status).toBe(2);
    const lines = syntax.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`invalid config ${broken}:`);
    expect(lines[1]).toMatch(new RegExp(`^  - ${broken}: .* at line 3, column 1$`));
    // The code frame, indented under it: the lines around the error and a caret.
    expect(lines.slice(2)).toEqual(['        port: [', '      upstream: { url: http://127.0.0.1:1 }', '      ^']);
  });

  test('an unknown key names the known one it is closest to; a port out of range says so; an empty file is refused, not served', async () => {
    const typos = join(dir, 'typos.yaml');
    writeFileSync(
      typos,
      'listen: { hots: 0.0.0.0, port: 70000 }\ntrust: { cidrz: [], discovery: { pods: [ { namespace: t, labelSelecter: a=b } ] } }\nidentity: { token: { audience: [x] } }\nfrobnicate: 1\n',
    );
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '# nothing set yet\n');
    const [checked, emptyChecked, emptyServed] = await Promise.all([
      cli('check-config', '--config', typos),
      cli('check-config', '--config', empty),
      cli('serve', '--config', empty),
    ]);
    const problems = checked.stderr
      .split('\n')
      .filter((l) => l.startsWith('  - '))
      .map((l) => l.slice(4));
    expect(problems).toEqual(
      expect.arrayContaining([
        'listen: unknown key "hots" (did you mean "host"?)',
        'listen.port: not a port: ports run from 0 (any free one) to 65535',
        'trust: unknown key "cidrz" (did you mean "cidrs"?)',
        'trust.discovery.pods.0: unknown key "labelSelecter" (did you mean "labelSelector"?)',
        'identity.token: unknown key "audience" (did you mean "audiences"?)',
        '(root): unknown key "frobnicate"',
      ]),
    );
    for (const run of [emptyChecked, emptyServed]) {
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(`${empty}: the file is empty`);
    }
    expect(emptyServed.stdout).not.toContain('listening');
  });

  test('a good file: "ok", exit 0; --keys also checks the key folder', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, `assertion: { keysDir: ${JSON.stringify(join(dir, 'empty-keys'))} }\n`);
    const [ok, keys] = await Promise.all([cli('check-config', '--config', good), cli('check-config', '--config', good, '--keys')]);
    expect(ok).toEqual({ status: 0, stdout: 'ok\n', stderr: '' });
    expect(keys.status).toBe(2);
    expect(keys.stderr).toContain('assertion: keysDir');
  });
});

describe('keygen', () => {
  test('writes 32 random bytes, mode 0400, that the sidecar loads; refuses to overwrite or escape the folder', async () => {
    const keysDir = join(dir, 'keys');
    const file = join(keysDir, 'k2026');
    expect(await cli('keygen', '--keys-dir', keysDir, '--kid', 'k2026')).toEqual({ status: 0, stdout: `${file}\n`, stderr: '' });
    const bytes = readFileSync(file);
    expect(bytes).toHaveLength(32);
    expect(bytes.equals(Buffer.alloc(32))).toBe(false);
    expect(statSync(file).mode & 0o777).toBe(0o400);
    expect(loadKeyRing(keysDir, '')).toMatchObject({ activeKeyId: 'k2026', problems: [] });

    const [again, escape] = await Promise.all([
      cli('keygen', '--keys-dir', keysDir, '--kid', 'k2026'),
      cli('keygen', '--keys-dir', keysDir, '--kid', '../escape'),
    ]);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain('exists');
    expect(readFileSync(file).equals(bytes)).toBe(true);
    expect(escape.status).toBe(2);
    expect(existsSync(join(dir, 'escape'))).toBe(false);
  });
});

describe('keygen --algorithm and verify --jwks', () => {
  test.each(['EdDSA', 'ES256'] as const)(
    '%s: a private key the sidecar loads, whose public set verifies what it signs; a bad algorithm is a usage error',
    async (algorithm) => {
      const keysDir = join(dir, `keys-${algorithm}`);
      expect((await cli('keygen', '--keys-dir', keysDir, '--kid', 'p1', '--algorithm', algorithm)).status).toBe(0);
      expect(statSync(join(keysDir, 'p1')).mode & 0o777).toBe(0o400);
      const ring = loadKeyRing(keysDir, '', algorithm);
      expect(ring).toMatchObject({ activeKeyId: 'p1', problems: [] });
      const now = Math.floor(Date.now() / 1000);
      const token = new AssertionSigner('p1', ring.keys.get('p1')!).sign({
        iss: 'trusted-proxy-sidecar',
        aud: 'gateway',
        sub: 'bob',
        groups: [],
        iat: now,
        nbf: now,
        exp: now + 30,
        jti: 'j1',
        cip: '203.0.113.9',
        htm: 'GET',
        htu: 'http://gw/',
      });
      const jwks = join(dir, `${algorithm}.jwks.json`);
      writeFileSync(jwks, JSON.stringify(publicKeySet(ring)));
      const byJwks = await cli('verify', '--jwks', jwks, token);
      expect([byJwks.status, JSON.parse(byJwks.stdout).sub]).toEqual([0, 'bob']);
      expect((await cli('verify', '--keys-dir', keysDir, '--algorithm', algorithm, token)).status).toBe(0);
      // The shared-key default refuses the key pair's folder outright.
      expect((await cli('verify', '--keys-dir', keysDir, token)).stderr).toMatch(/^not valid: unknown_key/);
      const bad = await cli('keygen', '--keys-dir', keysDir, '--kid', 'p2', '--algorithm', 'RS256');
      expect([bad.status, bad.stderr]).toEqual([2, expect.stringContaining('--algorithm must be one of HS256, EdDSA, ES256')]);
    },
  );
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

  test('prints the claims of a token the sidecar sent (bound to its request), exit 0', async () => {
    const r = await cli('verify', '--keys-dir', sc.keysDir, '--method', 'POST', '--uri', `http://127.0.0.1:${sc.port}/docs/x?q=1`, token);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(r.stdout)).toMatchObject({
      sub: 'alice@example.com',
      htm: 'POST',
      htu: `http://127.0.0.1:${sc.port}/docs/x?q=1`,
      kid: 'k1',
      iss: 'trusted-proxy-sidecar',
      aud: 'gateway',
    });
  });

  test('exits 1 with the reason for a bad token, 2 for a usage mistake', async () => {
    const [h, p, sig] = token.split('.') as [string, string, string];
    const flipped = `${h}.${p}.${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    const cases: Array<[string[], string]> = [
      [[flipped], 'signature'],
      [['--method', 'GET', '--uri', `http://127.0.0.1:${sc.port}/docs/x?q=1`, token], 'method'],
    ];
    const runs = await Promise.all([
      ...cases.map(([args]) => cli('verify', '--keys-dir', sc.keysDir, ...args)),
      cli('verify', '--keys-dir', sc.keysDir, '--method', 'GET', token),
    ]);
    cases.forEach(([args, code], i) => {
      expect({ args, status: runs[i]!.status, stdout: runs[i]!.stdout }).toEqual({ args, status: 1, stdout: '' });
      expect(runs[i]!.stderr).toMatch(new RegExp(`^not valid: ${code}: `));
    });
    expect(runs.at(-1)!.status).toBe(2);
  });
});
