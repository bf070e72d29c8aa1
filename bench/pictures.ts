// The pictures of the report: the latency distributions drawn as SVG and the CPU profile's flame
// graph, each rendered to PNG by the machine's Chromium.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_ARGS } from '../harness/chromium.js';
import { tempDir } from './procs.js';
import { fixedP, median } from './figures.js';
import { type Results } from './results.js';

// ------------------------------------------------------------------------------ chart

export const COLOURS = ['#222222', '#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2'];
export const NINES = [50, 90, 99, 99.9, 99.99];
export const nines = (p: number) => -Math.log10(1 - Math.min(p, 99.999) / 100);

export function panel(title: string, series: { name: string; points: [number, number][] }[], x0: number, w: number, h: number): string {
  const left = x0 + 70;
  const top = 60;
  const width = w - 115;
  const height = h - 180;
  const all = series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) => y > 0);
  const yMin = Math.pow(10, Math.floor(Math.log10(Math.min(...all))));
  const yMax = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const xMax = nines(99.99);
  const X = (p: number) => left + (nines(p) / xMax) * width;
  const Y = (ms: number) => top + height - ((Math.log10(Math.max(ms, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * height;
  const out = [`<text x="${x0 + w / 2}" y="32" font-size="20" text-anchor="middle" font-weight="bold">${title}</text>`];
  out.push(`<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#888"/>`);
  for (const p of NINES) {
    out.push(`<line x1="${X(p)}" y1="${top}" x2="${X(p)}" y2="${top + height}" stroke="#ddd"/>`);
    out.push(`<text x="${X(p)}" y="${top + height + 22}" font-size="15" text-anchor="middle">p${p}</text>`);
  }
  for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > yMax * 1.0001) break;
      out.push(`<line x1="${left}" y1="${Y(v)}" x2="${left + width}" y2="${Y(v)}" stroke="${m === 1 ? '#ccc' : '#eee'}"/>`);
      out.push(`<text x="${left - 8}" y="${Y(v) + 5}" font-size="14" text-anchor="end">${+v.toPrecision(2)}</text>`);
    }
  }
  out.push(`<text x="${left + width / 2}" y="${top + height + 48}" font-size="15" text-anchor="middle">percentile</text>`);
  out.push(
    `<text x="${x0 + 18}" y="${top + height / 2}" font-size="15" text-anchor="middle" transform="rotate(-90 ${x0 + 18} ${top + height / 2})">latency (ms, log scale)</text>`,
  );
  series.forEach((s, i) => {
    const d = s.points
      .filter(([p]) => p <= 99.99)
      .map(([p, y], j) => `${j === 0 ? 'M' : 'L'}${X(p).toFixed(1)},${Y(y).toFixed(1)}`)
      .join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2.5"/>`);
  });
  return out.join('\n');
}

export function legend(names: string[], x: number, y: number, width: number): string {
  const columns = 3;
  return names
    .map((name, i) => {
      const lx = x + (i % columns) * (width / columns);
      const ly = y + Math.floor(i / columns) * 26;
      const colour = COLOURS[i % COLOURS.length];
      const text = name.replace(/&/g, '&amp;').replace(/</g, '&lt;');
      return `<line x1="${lx}" y1="${ly - 5}" x2="${lx + 30}" y2="${ly - 5}" stroke="${colour}" stroke-width="4"/><text x="${lx + 38}" y="${ly}" font-size="16">${text}</text>`;
    })
    .join('\n');
}

export function chartSvg(r: Results): { svg: string; width: number; height: number } {
  const width = 1500;
  const height = 760;
  const saturation = r.http.map((h) => ({
    name: h.title,
    points: Object.entries(h.wrk.percentiles)
      .map(([p, ms]) => [Number(p), ms] as [number, number])
      .filter(([p]) => p >= 50)
      .sort((a, b) => a[0] - b[0]),
  }));
  // Per percentile, the median over the rounds.
  const fixed = r.http.map((h) => {
    const rounds = h.fixed?.rounds ?? [];
    const curve = (rounds[0]?.distribution ?? []).map((_, i) => median(rounds.map((x) => x.distribution[i]!)));
    return {
      name: h.title,
      points: curve
        .map((ms, i) => [((i + 1) / curve.length) * 100, ms] as [number, number])
        .filter(([p]) => p >= 50 && p < 100)
        .concat(h.fixed ? [[99.9, fixedP(h.fixed, '99.9')]] : []),
    };
  });
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    panel(`At saturation (wrk, ${r.connections} connections)`, saturation, 0, width / 2, height),
    panel(`At a fixed ${r.http[0]?.fixed?.rate ?? 2000} requests/s (median of rounds)`, fixed, width / 2, width / 2, height),
    legend(
      r.http.map((h) => h.title),
      70,
      height - 48,
      width - 100,
    ),
    '</svg>',
  ].join('\n');
  return { svg, width, height };
}

/** An SVG as a PNG, by Chromium's screenshot of it. */
export function renderPng({ svg, width, height }: { svg: string; width: number; height: number }, png: string): void {
  const work = tempDir(mkdtempSync(join(tmpdir(), 'tps-bench-chart-')));
  const svgPath = join(work, 'chart.svg');
  writeFileSync(svgPath, svg);
  execFileSync(
    'chromium',
    [
      '--headless',
      ...CHROMIUM_ARGS,
      '--hide-scrollbars',
      `--user-data-dir=${join(work, 'profile')}`,
      `--window-size=${width},${height}`,
      `--screenshot=${png}`,
      `file://${svgPath}`,
    ],
    { stdio: 'pipe', timeout: 60000 },
  );
  if (readFileSync(png).subarray(1, 4).toString() !== 'PNG') throw new Error('Chromium wrote no PNG');
}
