// Library entry: the decision pipeline and the sidecar, for embedding and tests.
export { configSchema, type Config, type ConfigInput } from './config/schema.js';
export { parseConfig, loadConfigFile } from './config/load.js';
export { decide, type Decision, type DecisionContext } from './decision/decide.js';
export { gatewayHeaders, upstreamHeaders } from './decision/gateway-headers.js';
export type { Mode, RequestFacts } from './vocabulary/facts.js';
export { compileRules, type Rules } from './decision/rules.js';
export { REFUSALS, type ReasonCode } from './vocabulary/refusals.js';
export { TrustRegistry, STATIC_SOURCE } from './trust/registry.js';
export { TrustedSet } from './trust/trusted-set.js';
export { AssertionSigner } from './assertion/sign.js';
export { Sidecar } from './server/sidecar.js';
