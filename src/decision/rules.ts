// The config compiled into what the decision reads. Rebuilt on reload and swapped whole.
import type { Config } from '../config/schema.js';
import { compilePolicy, type Policy } from '../policy/policy.js';
import { protectedNames, type ProtectedNames } from '../sanitise/protected.js';

export interface Rules {
  readonly config: Config;
  readonly policy: Policy;
  readonly owned: ProtectedNames;
}

export function compileRules(config: Config): Rules {
  return { config, policy: compilePolicy(config), owned: protectedNames(config) };
}
