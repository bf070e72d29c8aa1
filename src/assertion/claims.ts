// The claims of the identity assertion (docs/assertion.md is the normative description).
export interface AssertionClaims {
  iss: string;
  aud: string;
  /** The user, as the trusted proxy named them. */
  sub: string;
  email?: string;
  groups: readonly string[];
  iat: number;
  nbf: number;
  exp: number;
  /** Unique id (128 random bits, base64url) for replay caches. */
  jti: string;
  /** The client address the sidecar attributed the request to. */
  cip: string;
  /**
   * The gateway scopes, space-separated (the `scope` of RFC 8693 and RFC 9068); present when
   * the sidecar sends them (gateway.scopesHeader), so a verifier can hold that header to them.
   */
  scope?: string;
  /**
   * The machine route the request passed on without an SSO identity (`sub` is then
   * `route:<name>`); absent on a user's request. A verifier must not take such an
   * assertion as a user's: the guard admits it only without a user header.
   */
  route?: string;
  /** The request method. */
  htm: string;
  /** `proto://host` and the request target (path and query), as the gateway receives it. */
  htu: string;
}

/** Builds `proto://host/target`, the form both signer and verifier compare. */
export function targetUri(proto: string, host: string, target: string): string {
  return `${proto}://${host.toLowerCase()}${target}`;
}

/** The scopes header's value for a `scope` claim: the same scopes, comma-separated. */
export function scopesHeaderValue(scope: string): string {
  return scope.replaceAll(' ', ',');
}
