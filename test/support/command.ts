// The command as users run it: the one-file bundle `make build` writes (scripts/bundle.mjs),
// so every test that spawns the sidecar exercises the file that ships.
import { fileURLToPath } from 'node:url';

/** The command's path inside a package root: this repository or the image's runtime tree. */
export const COMMAND_PATH = 'dist/sidecar.js';

/** This repository's built command. */
export const COMMAND = fileURLToPath(new URL(`../../${COMMAND_PATH}`, import.meta.url));
