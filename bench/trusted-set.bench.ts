// Trusted-set matching at cluster scale: 5,000 node pod CIDRs (dual-stack: 2,500 IPv4 /24
// and 2,500 IPv6 /64) plus 200 pod IPs (half IPv4, half IPv6), looked up from the peer
// address text as the decision path does. Also the cost of a rebuild, which every
// discovery change pays. One thread; prints results, asserts nothing about time.
import { TrustedSet, type TrustEntry } from '../src/trust/trusted-set.js';
import { measure } from './micro.js';

const seconds = process.argv.includes('--quick') ? 0.5 : 2;
const hex = (n: number) => n.toString(16);

const entries: TrustEntry[] = [];
for (let i = 0; i < 2500; i++) {
  entries.push({ cidr: `10.${(i >> 8) & 255}.${i & 255}.0/24`, source: 'nodePodCIDRs' });
  entries.push({ cidr: `fd00:10:${hex(i)}::/64`, source: 'nodePodCIDRs' });
}
for (let i = 0; i < 100; i++) {
  entries.push({ cidr: `172.16.${i >> 4}.${(i * 7) & 255}`, source: 'pods:traefik/app.kubernetes.io/name=traefik' });
  entries.push({ cidr: `fd01::${hex(i * 3 + 1)}`, source: 'pods:traefik/app.kubernetes.io/name=traefik' });
}

// Probes: half inside the set, half outside it, spread over the whole table.
const v4: string[] = [];
const v6: string[] = [];
for (let i = 0; i < 4096; i++) {
  const node = (i * 613) % 2500;
  v4.push(i % 2 === 0 ? `10.${(node >> 8) & 255}.${node & 255}.${i & 255}` : `10.${200 + (i & 31)}.${i & 255}.9`);
  v6.push(i % 2 === 0 ? `fd00:10:${hex(node)}::${hex(i)}` : `fd02::${hex(i)}`);
}
const mixed = v4.map((a, i) => (i % 2 === 0 ? a : v6[i]!));

const set = new TrustedSet(entries, false);
for (const [name, probes] of [
  ['IPv4', v4],
  ['IPv6', v6],
] as const) {
  const hits = probes.filter((p) => set.lookup(p).trusted).length;
  if (hits !== probes.length / 2) throw new Error(`${name}: ${hits} of ${probes.length} probes matched, expected half`);
}

const rows: [string, number][] = [];
for (const [name, probes] of [
  ['IPv4', v4],
  ['IPv6', v6],
  ['mixed IPv4/IPv6', mixed],
] as const) {
  const mask = probes.length - 1;
  rows.push([`lookup ${name}`, measure((i) => set.lookup(probes[i & mask]!), seconds).perSecond]);
}
const builds = measure(() => new TrustedSet(entries, false), seconds, 1);

process.stdout.write(`trusted set: ${entries.length} entries (5,000 node CIDRs + 200 pod IPs), ${seconds} s per figure, one thread\n`);
for (const [name, perSecond] of rows) process.stdout.write(`  ${name.padEnd(24)} ${Math.round(perSecond).toLocaleString('en-US').padStart(12)} lookups/s\n`);
process.stdout.write(`  ${'rebuild (per change)'.padEnd(24)} ${(1000 / builds.perSecond).toFixed(2).padStart(12)} ms\n`);
