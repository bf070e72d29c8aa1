// Debian's Chromium inside a test host, driven by Playwright.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { Host } from './netns.js';

// Run as root on a machine with no network but the package registries: without these flags
// Chromium needs a sandbox root cannot have, a GPU, and it keeps trying to reach Google's
// services (connections this machine refuses, many at a time).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
] as const;

/** Starts Chromium in a test host (through a wrapper script written to `dir`); close() stops it. */
export async function launchChromium(host: Host, dir: string, args: readonly string[] = []): Promise<Browser> {
  // Playwright starts the browser through this wrapper, so it runs in the test host.
  const wrapper = join(dir, `chromium-${host.address}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${host.name} /usr/bin/chromium "$@"\n`);
  chmodSync(wrapper, 0o755);
  return chromium.launch({ executablePath: wrapper, headless: true, timeout: 60_000, args: [...CHROMIUM_ARGS, ...args] });
}
