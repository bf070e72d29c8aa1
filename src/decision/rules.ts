// The config compiled into what the decision reads. Rebuilt on reload and swapped whole.
import type { Config } from '../config/schema.js';
import { compilePolicy, type Policy } from '../policy/policy.js';
import type { TokenRules } from '../identity/token.js';
import { HeaderNames } from '../request/headers.js';
import { protectedNames } from '../request/protected.js';
import { compileCertificateRules } from '../trust/certificate.js';
import type { SourceRules } from '../trust/source.js';

export interface Rules {
  readonly config: Config;
  /** How the source stage trusts a peer: address, certificate, either or both. */
  readonly source: SourceRules;
  /** How a provider token is checked (identity.token); unused when its mode is off. */
  readonly token: TokenRules;
  readonly policy: Policy;
  /** The protected names, and the names the decision reads (the header pass keeps only their values). */
  readonly headers: HeaderNames;
  /**
   * Authorization is stripped only as the provider token's header (identity.token): on a
   * machine route it is the gateway's own credential, and passes as it came.
   */
  readonly machineAuthorization: boolean;
}

export function compileRules(config: Config): Rules {
  const { issuer, audiences, algorithms, clockSkewSeconds } = config.identity.token;
  const token = { issuer, audiences: new Set(audiences), algorithms: new Set<string>(algorithms), clockSkewSeconds };
  const { require, clientCertificates } = config.trust;
  const source = { require, from: clientCertificates.from, certificates: compileCertificateRules(clientCertificates) };
  const tokenAuthorization = config.identity.token.mode !== 'off' && config.identity.token.header === 'authorization';
  const withoutToken = { ...config, identity: { ...config.identity, token: { ...config.identity.token, mode: 'off' as const } } };
  const machineAuthorization = tokenAuthorization && protectedNames(withoutToken).match('authorization') === undefined;
  return { config, source, token, policy: compilePolicy(config), headers: new HeaderNames(protectedNames(config), headerReads(config)), machineAuthorization };
}

/**
 * Every name the stages read (request, identity, policy, and the forwarded facts the
 * assertion binds). A name left
 * out would read as absent: the property test holds decisions made with this set equal
 * to decisions made over every header.
 */
function headerReads(config: Config): ReadonlySet<string> {
  const { userHeader, emailHeader, groupsHeader, requiredHeaders, token } = config.identity;
  const names = ['host', 'origin', 'x-request-id', 'x-forwarded-method', 'x-forwarded-uri', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'];
  const tokenHeader = token.mode === 'off' ? '' : token.header;
  return new Set([...names, userHeader, emailHeader, groupsHeader, tokenHeader, ...requiredHeaders].filter(Boolean));
}
