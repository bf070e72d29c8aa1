// What a reload does. A running sidecar changes when its config file, its key folder or a
// discovery source changes (runtime/runtime.ts watches them). A config file that cannot be
// taken (invalid, or a change only a restart can make: liveChangeProblems) is refused
// before anything else happens, and the previous config stays in force. Otherwise the
// change compiles a new immutable snapshot from the inputs in force (runtime/snapshot.ts)
// and swaps it in whole: requests that already took the old one finish on it. Then the live
// parts of the sidecar apply the new snapshot, in this order (applySnapshot):
//   1. settings bound to open sockets (the listeners) that changed are named in a warning;
//   2. the log level;
//   3. the trusted-set size metrics;
//   4. the upstream side: the fair-share limits and the slot queue (a request carries its
//      snapshot's gateway URL and timeouts, so nothing else changes here);
//   5. the data plane: header, keep-alive, connection and stall limits;
//   6. discovery: sources added or removed (the first one loads the Kubernetes client);
//      the identity provider's key source, started, stopped or replaced when
//      identity.token names another provider (its keys are an input of the snapshot);
//   7. open WebSockets the new snapshot would refuse (their proxy no longer trusted, their
//      user no longer allowed) are closed with 1008.
import type { Server } from 'node:http';
import type { Config, DiscoveryConfig, TokenConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { isAllowed } from '../policy/policy.js';
import type { Admission } from '../proxy/limits.js';
import type { WebSocketTracker } from '../proxy/websockets.js';
import type { Snapshot } from '../runtime/snapshot.js';
import { recheckSource } from '../trust/source.js';
import type { TrustedSet } from '../trust/trusted-set.js';
import type { ConnectionQuota } from './connection-quota.js';
import type { ConnectionWatch } from './connections.js';
import { applyListenLimits } from './data-plane.js';

/** Settings bound when a socket is opened; changing them needs a restart. */
const RESTART_KEYS = [
  'listen.host',
  'listen.port',
  'listen.certFile',
  'listen.keyFile',
  'listen.clientCAFile',
  'listen.maxHeaderBytes',
  'admin.host',
  'admin.port',
] as const;

/** The live parts of the sidecar that apply a new snapshot. */
export interface LiveParts {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly admission: Admission;
  readonly websockets: WebSocketTracker;
  readonly dataPlane: Server;
  readonly connections: ConnectionWatch;
  readonly untrusted: ConnectionQuota;
  /** Brings discovery in step with the config (starting it for a first source). */
  readonly discovery: (config: DiscoveryConfig) => void;
  /** Brings the identity provider's key source in step with identity.token. */
  readonly providerKeys: (config: TokenConfig) => void;
}

export function applySnapshot(previous: Snapshot, next: Snapshot, parts: LiveParts): void {
  const configChanged = previous.config !== next.config;
  const { config } = next;
  if (configChanged) {
    warnRestartNeeded(previous.config, config, parts.logger);
    parts.logger.level = config.logging.level;
  }
  if (previous.trusted !== next.trusted) recordTrustedSet(parts.metrics, next.trusted);
  if (configChanged) {
    parts.admission.applyConfig(config);
    parts.websockets.setLimit(config.limits.maxWebSocketsPerIdentity);
    applyListenLimits(parts.dataPlane, config.listen);
    parts.connections.setStallTimeout(config.limits.clientStallTimeoutSeconds * 1000);
    parts.untrusted.setLimit(config.listen.maxUntrustedConnections);
    parts.discovery(config.trust.discovery);
    parts.providerKeys(config.identity.token);
  }
  if (previous.trusted !== next.trusted || previous.rules.policy !== next.rules.policy || previous.rules.source !== next.rules.source) {
    const closed = parts.websockets.revoke(
      (identity, peer, certificate) => recheckSource(peer, certificate, next.trusted, next.rules.source) && isAllowed(identity, next.rules.policy),
    );
    if (closed > 0) parts.logger.info({ closed, why: configChanged ? 'config reload' : 'trusted set change' }, 'closed WebSockets no longer allowed');
  }
}

/** The trusted set's entry count per source, as the metric shows it. */
export function recordTrustedSet(metrics: Metrics, set: TrustedSet): void {
  metrics.trustedSetSize.reset();
  for (const [source, size] of set.sizeBySource) metrics.trustedSetSize.set({ source }, size);
}

function warnRestartNeeded(before: Config, after: Config, logger: Logger): void {
  for (const key of RESTART_KEYS) {
    const [section, name] = key.split('.') as [keyof Config, string];
    const old = (before[section] as Record<string, unknown>)[name];
    const now = (after[section] as Record<string, unknown>)[name];
    if (old !== now) logger.warn({ key, old, new: now }, 'config change needs a restart to take effect');
  }
}
