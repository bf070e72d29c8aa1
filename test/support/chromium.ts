// Debian's Chromium, run as root on a machine with no network but the package registries:
// without these flags it needs a sandbox root cannot have, a GPU, and it keeps trying to
// reach Google's services (connections this machine refuses, many at a time).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
] as const;
