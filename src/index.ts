// Library entry: the decision pipeline and the sidecar, for embedding and tests.
export { configSchema, type Config, type ConfigInput } from './config/schema.js';
export { parseConfig, loadConfigFile } from './config/load.js';
export { decide, gatewayHeaders, upstreamHeaders, type Decision, type RequestFacts, type DecisionContext } from './decision/decide.js';
export { compileRules, type Rules } from './decision/rules.js';
export { REFUSALS, type ReasonCode } from './decision/reasons.js';
export { TrustRegistry, STATIC_SOURCE } from './trust/registry.js';
export { TrustedSet } from './trust/trusted-set.js';
export { AssertionSigner } from './assertion/sign.js';
export { Sidecar } from './server/sidecar.js';
