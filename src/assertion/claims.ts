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
  /** The request method. */
  htm: string;
  /** `proto://host/path` of the request, without query or fragment. */
  htu: string;
}

/** Builds `proto://host/path`, the form both signer and verifier compare. */
export function targetUri(proto: string, host: string, path: string): string {
  return `${proto}://${host.toLowerCase()}${path}`;
}
