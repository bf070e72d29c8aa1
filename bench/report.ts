// Writes reports/performance.md (markdown.ts) and its pictures (pictures.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { flameGraphSvg } from './cpu-profile.js';
import { markdown } from './markdown.js';
import { chartSvg, renderPng } from './pictures.js';
import { type Results } from './results.js';

export async function writeReport(r: Results, dir: string): Promise<void> {
  writeFileSync(join(dir, 'performance.md'), markdown(r));
  renderPng(chartSvg(r), join(dir, 'performance.png'));
  if (r.profile) {
    const title = `The sidecar inline at saturation: ${r.profile.samples} samples over ${r.profile.seconds} s, ${Math.round(r.profile.rps)} req/s, ${r.profile.cpuMicrosPerRequest.toFixed(0)} µs of CPU per request`;
    renderPng(flameGraphSvg(r.profile.tree, 1400, title), join(dir, 'performance-flame.png'));
  }
}
