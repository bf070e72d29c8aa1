// The attack corpus (test/reliability/corpus/*.json) sent byte for byte to the real sidecar
// process directly and through real Caddy and real nginx (inline and forward-auth), from a
// trusted host ("ingress"), an untrusted one ("rogue") and the pod's own loopback. The
// oracle is what the recording gateways received: every request there must carry an
// assertion that verifies, name the identity the trusted side vouched for, carry no
// client copy of a header the sidecar owns, and match one decision the sidecar allowed.
import { join } from 'node:path';
import { CLASSES, CONNECTION_CLASSES, forgedAssertions, loadCorpus, render, statuses, type CorpusCase, type Materials } from './corpus.js';
import { recordSection, table } from './report.js';
import type { JsonProcess } from '../support/front-proxies.js';
import type { Host } from '../../harness/netns.js';
import { PORTS, startTopology, type Topology } from '../support/topology.js';
import type { GatewayRecord } from '../support/recording-gateway.js';
import { parseAddress } from '../../src/trust/address.js';
import { normaliseName } from '../../src/request/protected.js';
import { waitFor } from '../../harness/wait.js';

const { sidecar: SIDECAR_PORT } = PORTS;
const USER = 'alice@example.com';
const EVIL = 'mallory@evil.example';
const repo = process.cwd();

type From = 'ingress' | 'rogue' | 'pod';
interface Path {
  name: string;
  from: From;
  /** Where the bytes go: the sidecar, or a front proxy site. */
  to: 'sidecar' | 'caddy' | 'nginx' | 'caddy-fa' | 'nginx-fa';
  /** Loopback target inside the pod, instead of the pod's address. */
  loopback?: '127.0.0.1' | '::1';
}
const PATHS: Path[] = [
  { name: 'direct-ingress', from: 'ingress', to: 'sidecar' },
  { name: 'direct-rogue', from: 'rogue', to: 'sidecar' },
  { name: 'loopback-v4', from: 'pod', to: 'sidecar', loopback: '127.0.0.1' },
  { name: 'loopback-v6', from: 'pod', to: 'sidecar', loopback: '::1' },
  { name: 'caddy-ingress', from: 'ingress', to: 'caddy' },
  { name: 'caddy-rogue', from: 'rogue', to: 'caddy' },
  { name: 'nginx-ingress', from: 'ingress', to: 'nginx' },
  { name: 'nginx-rogue', from: 'rogue', to: 'nginx' },
  { name: 'caddy-fa-rogue', from: 'rogue', to: 'caddy-fa' },
  { name: 'nginx-fa-rogue', from: 'rogue', to: 'nginx-fa' },
];
const PROXY_PORTS = { caddy: 8081, 'caddy-fa': 8082, nginx: 8083, 'nginx-fa': 8084 } as const;
/** Paths on which a request may legitimately reach a gateway. */
const CAN_REACH = new Set(['direct-ingress', 'caddy-ingress', 'caddy-rogue', 'nginx-ingress', 'nginx-rogue', 'caddy-fa-rogue', 'nginx-fa-rogue']);

/** Header names (normalised) no client copy of may reach the gateway. */
const OWNED = ['x-auth-request-', 'x-trusted-proxy-assertion', 'x-forwarded-', 'forwarded', 'x-real-ip', 'x-openclaw-scopes'];
/** The sidecar's own headers, once each. */
const ISSUED_ONCE = ['x-trusted-proxy-assertion', 'x-forwarded-user', 'x-openclaw-scopes'];
const ISSUED = new Set([...ISSUED_ONCE, 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

let topology: Topology | undefined;
let hosts: Record<From, Host>;
let gateways: { inline: JsonProcess; fa: JsonProcess };
const sidecarLogs: Record<string, unknown>[] = [];
let cookie: string;
let key: Buffer;

beforeAll(async () => {
  topology = await startTopology({
    name: 'corpus',
    users: { alice: { password: 'pw', email: USER, groups: ['operators'] } },
    sidecar: {
      // Dual-stack: every IPv4 peer arrives as ::ffff:a.b.c.d, so each case also proves
      // mapped addresses are classified as their IPv4 selves.
      listen: { host: '::', allowedOrigins: ['https://app.example'] },
      // Debug logs name every allowed request (id, method, path): the smuggling count.
      logging: { level: 'debug' },
    },
    sites: {
      caddy: [
        ['inline', PROXY_PORTS.caddy],
        ['forward-auth', PROXY_PORTS['caddy-fa']],
      ],
      nginx: [
        ['inline', PROXY_PORTS.nginx],
        ['forward-auth', PROXY_PORTS['nginx-fa']],
      ],
    },
    onSidecarLog: (line) => sidecarLogs.push(line),
  });
  hosts = { ingress: topology.ingress, pod: topology.pod, rogue: topology.rogue };
  gateways = { inline: topology.gateways.inline, fa: topology.gateways['forward-auth'] };
  cookie = topology.cookies['alice']!;
  key = topology.key;
}, 90_000);

afterAll(async () => {
  await topology?.teardown();
}, 30_000);

// ------------------------------------------------------------------------------ sending

interface Send {
  id: string;
  c: CorpusCase;
  path: Path;
  reply: string;
}

function destination(path: Path): { host: string; port: number } {
  if (path.loopback) return { host: path.loopback, port: SIDECAR_PORT };
  if (path.to === 'sidecar') return { host: hosts.pod.address, port: SIDECAR_PORT };
  return { host: hosts.ingress.address, port: PROXY_PORTS[path.to] };
}

/** Runs reliability/raw-send.ts inside a host, so the bytes leave from that host's address. */
function sendFrom(from: From, jobs: { id: string; host: string; port: number; bytes: Buffer }[]): Promise<Map<string, string>> {
  const child = hosts[from].spawn(process.execPath, [join(repo, 'test/reliability/raw-send.ts')], { stdio: ['pipe', 'pipe', 'pipe'] });
  const input = {
    jobs: jobs.map((j) => ({ id: j.id, host: j.host, port: j.port, b64: j.bytes.toString('base64') })),
    concurrency: 24,
    idleMs: 700,
    capMs: 5000,
  };
  child.stdin!.end(JSON.stringify(input));
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`raw-send in ${from} exited ${code}: ${err}`));
      const replies = new Map<string, string>();
      for (const line of out.split('\n').filter(Boolean)) {
        const r = JSON.parse(line) as { id: string; reply: string };
        replies.set(r.id, r.reply);
      }
      resolve(replies);
    });
  });
}

function materials(target: string, host: string, replay: string): Materials {
  return {
    target,
    host,
    cookie,
    user: USER,
    evil: EVIL,
    addresses: { ING: hosts.ingress.address, POD: hosts.pod.address, ROGUE: hosts.rogue.address },
    assertions: forgedAssertions(key, EVIL, replay),
  };
}

const values = (rec: GatewayRecord, name: string) => rec.rawHeaders.filter((_, i) => i % 2 === 1 && rec.rawHeaders[i - 1]!.toLowerCase() === name);

/** The identity the trusted side vouched for: the session's user through a proxy, else the case's own identity line. */
function vouchedFor(c: CorpusCase, path: Path): string {
  if (path.to !== 'sidecar') return USER;
  const line = c.identity === undefined || c.bytes !== undefined ? `X-Auth-Request-Email: ${USER}` : (c.identity ?? '');
  const value = line
    .slice(line.indexOf(':') + 1)
    .replaceAll('{USER}', USER)
    .replaceAll('{EVIL}', EVIL)
    .trim();
  return Buffer.from(value, 'latin1').toString('utf8');
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

// ------------------------------------------------------------------------------ the run

test('no attack in the corpus gets a forged identity, an unverifiable request or a smuggled request to a gateway', async () => {
  const corpus = loadCorpus();
  expect(corpus.length).toBeGreaterThanOrEqual(100);
  const byteClasses = Object.keys(CLASSES)
    .map(Number)
    .filter((n) => !CONNECTION_CLASSES.has(n));
  for (const cls of byteClasses) expect(corpus.some((c) => c.class === cls)).toBe(true);

  // A real assertion to replay: captured from a legitimate request for another path.
  const captureTarget = '/captured/elsewhere';
  const before = gateways.inline.lines.length;
  const dest = destination(PATHS[0]!);
  const capture = render({ id: 'capture', class: 0, title: 'capture', lines: [] }, materials(captureTarget, `${hosts.pod.address}:${SIDECAR_PORT}`, ''));
  await sendFrom('ingress', [{ id: 'capture', ...dest, bytes: capture }]);
  await waitFor(() => gateways.inline.lines.length > before, 'the captured request at the gateway');
  const replay = values(gateways.inline.lines[before] as unknown as GatewayRecord, 'x-trusted-proxy-assertion')[0]!;
  expect(replay.split('.')).toHaveLength(3);
  const baseline = { inline: gateways.inline.lines.length, fa: gateways.fa.lines.length, logs: sidecarLogs.length };

  // Every case on every path, each host sending its share concurrently.
  const sends = new Map<string, Send>();
  const byHost = new Map<From, { id: string; host: string; port: number; bytes: Buffer }[]>();
  for (const c of corpus) {
    for (const path of PATHS) {
      const id = `${c.id}/${path.name}`;
      const d = destination(path);
      const bytes = render(c, materials(`/c/${id}`, d.host.includes(':') ? `[${d.host}]:${d.port}` : `${d.host}:${d.port}`, replay));
      sends.set(id, { id, c, path, reply: '' });
      byHost.set(path.from, [...(byHost.get(path.from) ?? []), { id, ...d, bytes }]);
    }
  }
  const replies = await Promise.all([...byHost].map(([from, jobs]) => sendFrom(from, jobs)));
  for (const r of replies) for (const [id, reply] of r) sends.get(id)!.reply = reply;
  // Every line the gateways wrote for the sends has reached the test (topology.ts says how).
  const ends = await topology!.gatewayLinesEnd();
  const end = { inline: ends.inline, fa: ends['forward-auth'] };

  // ---------------------------------------------------------------- the oracle
  const records = [
    ...gateways.inline.lines.slice(baseline.inline, end.inline).map((r) => ({ gw: 'inline' as const, rec: r as unknown as GatewayRecord })),
    ...gateways.fa.lines.slice(baseline.fa, end.fa).map((r) => ({ gw: 'fa' as const, rec: r as unknown as GatewayRecord })),
  ];
  const allowedLogs = sidecarLogs.slice(baseline.logs).filter((l) => l['msg'] === 'allowed');
  const inlineAllowed = new Map(allowedLogs.filter((l) => l['mode'] === 'inline').map((l) => [String(l['requestId']), l]));
  const faAllowed = allowedLogs.filter((l) => l['mode'] === 'forward-auth').length;
  const violations: { send: string; kind: string; detail: string }[] = [];
  const reached = new Map<string, number>();
  const matchedIds = new Set<string>();
  const stoppedByVerifier: string[] = [];

  for (const { gw, rec } of records) {
    const m = /^\/c\/([a-z0-9-]+)\/([a-z0-9-]+)(\/smuggled)?/.exec(rec.url);
    const sendId = m ? `${m[1]}/${m[2]}` : rec.url;
    const send = sends.get(sendId);
    const flag = (kind: string, detail: string) => violations.push({ send: sendId, kind, detail });
    if (!send) {
      // Which gateway, and the lines it got, to tell where an unknown request came from.
      flag('smuggled', `unattributable ${rec.method} ${rec.url} at the ${gw} gateway: ${JSON.stringify(rec.rawHeaders)}`);
      continue;
    }
    if (m![3]) flag('smuggled', `${rec.method} ${rec.url}`);
    if (!CAN_REACH.has(send.path.name)) flag('untrusted-reached', send.path.name);
    if (!rec.assertion?.verified) {
      // Forward-auth mode puts the gateway behind the proxy, not the sidecar: there the
      // gateway's own verifier is the check, and a request it refused got nowhere.
      if (gw === 'fa') stoppedByVerifier.push(`${sendId}: ${rec.assertion?.verified === false ? rec.assertion.error : 'no result'}`);
      else flag('unverifiable', JSON.stringify(rec.assertion));
      continue;
    }
    reached.set(sendId, (reached.get(sendId) ?? 0) + 1);
    const expected = vouchedFor(send.c, send.path);
    if (rec.assertion.sub !== expected) flag('forged-identity', `sub ${rec.assertion.sub}, expected ${expected}`);
    const plain = values(rec, 'x-forwarded-user').map((v) => Buffer.from(v, 'latin1').toString('utf8'));
    if (plain.some((p) => p !== expected) || (gw === 'inline' && plain.length !== 1)) flag('forged-identity', `x-forwarded-user ${JSON.stringify(plain)}`);
    if (values(rec, 'x-trusted-proxy-assertion').length !== 1) flag('forged-header', 'more than one assertion');
    // Inline, the sidecar is the only way in: nothing of a name it owns but its own values.
    if (gw === 'inline') {
      for (const name of ISSUED_ONCE) if (values(rec, name).length !== 1) flag('forged-header', `${name} × ${values(rec, name).length}`);
      for (let i = 0; i < rec.rawHeaders.length; i += 2) {
        const lower = rec.rawHeaders[i]!.toLowerCase();
        const n = normaliseName(lower);
        if (OWNED.some((p) => n.startsWith(p)) && !(ISSUED.has(lower) && lower === n)) flag('forged-header', `${rec.rawHeaders[i]}: ${rec.rawHeaders[i + 1]}`);
      }
    }
    // Through a proxy, the client address is the real client, whatever it forged.
    const cip = parseAddress(String(claimsOf(values(rec, 'x-trusted-proxy-assertion')[0]!)['cip']))?.text;
    if (send.path.to !== 'sidecar' && cip !== hosts[send.path.from].address) flag('forged-client', `cip ${cip}`);
    // Inline: each request matches one decision the sidecar allowed, for this method and path.
    if (gw === 'inline') {
      const rid = values(rec, 'x-request-id')[0] ?? '';
      const decision = inlineAllowed.get(rid);
      if (!decision || matchedIds.has(rid) || decision['method'] !== rec.method || decision['path'] !== rec.url.split('?')[0]) {
        flag('unchecked', `no allowed decision for ${rec.method} ${rec.url} (${rid})`);
      }
      matchedIds.add(rid);
    }
  }
  const faRecords = records.filter((r) => r.gw === 'fa').length;
  if (faRecords > faAllowed) violations.push({ send: 'forward-auth', kind: 'unchecked', detail: `${faRecords} requests at the gateway, ${faAllowed} allowed` });

  // The controls must get through, or refusing everything would pass this test.
  for (const path of PATHS.filter((p) => CAN_REACH.has(p.name))) {
    for (const id of ['control-get', 'control-post']) {
      expect({ send: `${id}/${path.name}`, reached: reached.get(`${id}/${path.name}`) ?? 0 }).toEqual({ send: `${id}/${path.name}`, reached: 1 });
    }
  }
  expect(reached.get('control-utf8-user/direct-ingress')).toBe(1);
  expect(violations).toEqual([]);

  // ---------------------------------------------------------------- the report
  const classRows = Object.entries(CLASSES)
    .filter(([n]) => !CONNECTION_CLASSES.has(Number(n)))
    .map(([n, title]) => {
      const mine = [...sends.values()].filter((s) => s.c.class === Number(n));
      const cases = new Set(mine.map((s) => s.c.id)).size;
      const through = mine.filter((s) => reached.has(s.id)).length;
      const bad = violations.filter((v) => sends.get(v.send)?.c.class === Number(n)).length;
      return [`${n}. ${title}`, cases, mine.length, through, mine.length - through, bad];
    });
  const total = [...sends.values()];
  const count = (kind: string) => violations.filter((v) => v.kind === kind).length;
  recordSection(
    'corpus',
    [
      `${corpus.length} cases (\`test/reliability/corpus/*.json\`) × ${PATHS.length} paths = ${total.length} raw-socket sends to the real sidecar process`,
      `(listening dual-stack, so IPv4 peers arrive as IPv4-mapped IPv6), directly and through Caddy and nginx in inline and forward-auth mode.`,
      `Paths: ${PATHS.map((p) => `\`${p.name}\``).join(', ')}. Trusted: the ingress host only; loopback is not trusted.`,
      '',
      'The oracle is what the recording gateways received (they verify every assertion with the key folder and a replay cache).',
      '"Reached the gateway" counts only legitimate arrivals: a verifying assertion, naming the identity the trusted side vouched for.',
      '',
      table(['class (header-attacks.md)', 'cases', 'sends', 'reached the gateway (legitimately)', 'stopped', 'violations'], classRows),
      '',
      table(
        ['what got through', 'count'],
        [
          ['forged identities (sub or plain user header not the vouched-for user)', count('forged-identity')],
          ["client copies of owned headers, or the attacker's values, at the gateway", count('forged-header')],
          ['forged client addresses (through a proxy, cip not the real client)', count('forged-client')],
          ['unsigned or unverifiable requests', count('unverifiable')],
          ['smuggled second requests / requests without a matching allowed decision', count('smuggled') + count('unchecked')],
          ['requests from an untrusted path at the gateway', count('untrusted-reached')],
        ],
      ),
      '',
      `Inline gateway: ${records.filter((r) => r.gw === 'inline').length} requests received, each matched one-to-one (by request id, method and path) to the sidecar's ${inlineAllowed.size} allowed decisions.`,
      `Forward-auth gateway: ${faRecords} requests received against ${faAllowed} forward-auth grants by the sidecar;`,
      `${stoppedByVerifier.length} of them arrived without a usable assertion and were refused by the gateway's verifier`,
      `(in forward-auth mode the front proxy, not the sidecar, forwards the request${stoppedByVerifier.length ? `: ${[...new Set(stoppedByVerifier)].join('; ')}` : ''}).`,
    ].join('\n'),
  );

  // Parser differential: what each parser made of the smuggling cases.
  const show = (s: Send | undefined) => (s ? statuses(s.reply).join('+') || 'none' : '-');
  const diffRows = corpus
    .filter((c) => c.class === 9)
    .map((c) => {
      const direct = sends.get(`${c.id}/direct-ingress`);
      const caddy = sends.get(`${c.id}/caddy-rogue`);
      const nginx = sends.get(`${c.id}/nginx-rogue`);
      const disagree = new Set([show(direct), show(caddy), show(nginx)]).size > 1 ? 'yes' : '';
      const gw = PATHS.reduce((n, p) => n + (reached.get(`${c.id}/${p.name}`) ?? 0), 0);
      return [c.id, show(direct), show(caddy), show(nginx), disagree, gw, 0];
    });
  recordSection(
    'differential',
    [
      'Statuses of every response on the connection (`+` joins pipelined responses) for each request-smuggling case, sent',
      'to the sidecar directly from the trusted host and through each front proxy. Where the parsers disagree, the',
      'gateway still received nothing that the sidecar did not check: every request there matched one allowed decision',
      'and verified, and no `/smuggled` request arrived.',
      '',
      table(['case', 'sidecar direct', 'Caddy → sidecar', 'nginx → sidecar', 'disagree', 'requests at the gateway (all paths)', 'unchecked'], diffRows),
    ].join('\n'),
  );
}, 150_000);
