// The source stage: is the peer a trusted proxy? By its address (the trusted set), by the
// certificate it presented (TLS) or that the mesh's proxy reports for it (XFCC), or by
// both, as trust.require says. Pure: the shell hands in the socket's facts.
import type { Address } from './address.js';
import { certificateAllowedBy, parseXfcc, type CertificateRules, type PeerCertificate } from './certificate.js';
import type { TrustedSet } from './trusted-set.js';

export type RequireMode = 'address' | 'certificate' | 'either' | 'both';

export interface SourceRules {
  readonly require: RequireMode;
  /** Where the certificate comes from: the TLS connection, or the mesh proxy's XFCC header. */
  readonly from: 'tls' | 'xfcc';
  readonly certificates: CertificateRules;
}

/** The TLS connection's client certificate: verified against the client CA, or not. */
export type TlsCertificate = PeerCertificate | 'unverified' | undefined;

export interface SourceFacts {
  readonly peer: string;
  readonly tlsCertificate?: TlsCertificate;
  readonly rawHeaders: readonly string[];
}

export type SourceResult =
  | { readonly ok: true; readonly address: Address; readonly trustedBy: readonly string[]; readonly certificate: PeerCertificate | undefined }
  | { readonly ok: false; readonly address: Address | null; readonly detail: string };

export const XFCC = 'x-forwarded-client-cert';

export function checkSource(facts: SourceFacts, trusted: TrustedSet, rules: SourceRules): SourceResult {
  const cert = rules.require === 'address' ? NOT_ASKED : rules.from === 'xfcc' ? meshCertificate(facts.rawHeaders) : tlsCertificate(facts.tlsCertificate);
  return sourceResult(facts.peer, cert, trusted, rules);
}

/**
 * The same stage for a connection already allowed (an open WebSocket), after a reload or
 * a trusted-set change: its address and the certificate it was trusted by, against the new rules.
 */
export function recheckSource(peer: string, certificate: PeerCertificate | undefined, trusted: TrustedSet, rules: SourceRules): boolean {
  return sourceResult(peer, certificate ? { certificate } : { problem: 'certificate_missing' }, trusted, rules).ok;
}

/**
 * The peer is refused by its address alone, whatever it sends: no usable address, or, when
 * trust.require needs the address (address, both), one outside the trusted set. Known at
 * accept, before any request: the data port bounds the connections such peers hold
 * (server/connection-quota.ts). Under certificate or either, a certificate could
 * still vouch for the peer, so this is false.
 */
export function refusedByAddress(peer: string, trusted: TrustedSet, rules: Pick<SourceRules, 'require'>): boolean {
  const lookup = trusted.lookup(peer);
  if (lookup.trusted) return false;
  if (lookup.address === null || lookup.reason === 'unspecified') return true;
  return rules.require === 'address' || rules.require === 'both';
}

type CertificateFact = { certificate?: PeerCertificate; problem?: string };
/** By address alone no certificate is read (one shared object: this runs on every request). */
const NOT_ASKED: CertificateFact = Object.freeze({});

/** The address and the certificate fact, against the trusted set and trust.require. */
function sourceResult(peer: string, cert: CertificateFact, trusted: TrustedSet, rules: SourceRules): SourceResult {
  const lookup = trusted.lookup(peer);
  const addressProblem = lookup.trusted
    ? undefined
    : lookup.reason === 'not_in_trusted_set'
      ? `not_in_trusted_set: no match in ${trusted.describeSources()}`
      : lookup.reason;
  // Never trusted whatever the certificate: no address to answer, or to name as the client.
  if (lookup.address === null || (!lookup.trusted && lookup.reason === 'unspecified')) return { ok: false, address: lookup.address, detail: addressProblem! };
  const address = lookup.address;
  if (rules.require === 'address') {
    return lookup.trusted ? { ok: true, address, trustedBy: lookup.sources, certificate: undefined } : { ok: false, address, detail: addressProblem! };
  }
  const allowedBy = cert.certificate && certificateAllowedBy(cert.certificate, rules.certificates);
  const certProblem = cert.problem ?? (allowedBy ? undefined : 'certificate_not_allowed');
  const ok =
    rules.require === 'certificate'
      ? certProblem === undefined
      : rules.require === 'either'
        ? certProblem === undefined || lookup.trusted
        : certProblem === undefined && lookup.trusted;
  // The detail names what was checked: the certificate alone, or the address too.
  if (!ok) return { ok: false, address, detail: [rules.require === 'certificate' ? undefined : addressProblem, certProblem].filter(Boolean).join('; ') };
  const byAddress = lookup.trusted ? lookup.sources : [];
  return {
    ok: true,
    address,
    trustedBy: allowedBy ? [...byAddress, `certificate ${allowedBy}`] : byAddress,
    certificate: allowedBy ? cert.certificate : undefined,
  };
}

function tlsCertificate(cert: TlsCertificate): CertificateFact {
  if (cert === undefined) return { problem: 'certificate_missing' };
  if (cert === 'unverified') return { problem: 'certificate_unverified' };
  return { certificate: cert };
}

/**
 * The certificate the mesh's proxy verified: the last XFCC element, the one the nearest
 * proxy appended (Envoy's APPEND_FORWARD keeps earlier, client-supplied ones before it).
 * Only a value that reads one way by Envoy's grammar (xfcc.ts) says which element that is;
 * two header lines are refused too: the proxy writes one.
 */
function meshCertificate(rawHeaders: readonly string[]): CertificateFact {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === XFCC.length && rawHeaders[i]!.toLowerCase() === XFCC) {
      if (value !== undefined) return { problem: 'xfcc_duplicated' };
      value = rawHeaders[i + 1]!;
    }
  }
  if (value === undefined) return { problem: 'xfcc_missing' };
  const parsed = parseXfcc(value);
  if (!parsed.ok) return { problem: `xfcc_malformed: ${parsed.problem}` };
  return { certificate: parsed.certificates.at(-1)! };
}
