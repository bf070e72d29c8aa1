// Who a peer is by certificate: the client certificate of a TLS connection (verified
// against listen.clientCAFile), or, behind a service mesh, the one the mesh's proxy
// verified and reports in Envoy's x-forwarded-client-cert. Pure parsing and matching; the
// shell reads the socket, the source stage (source.ts) decides.
import { parseXfccHeader } from './xfcc.js';

/** The names a certificate vouches for. */
export interface PeerCertificate {
  /** Subject attributes in order, names upper-cased: [['CN', 'traefik'], ['O', 'ingress']]. */
  readonly subject: readonly (readonly [string, string])[];
  readonly dnsNames: readonly string[];
  readonly uris: readonly string[];
}

/** What trust.clientCertificates allows, compiled. */
export interface CertificateRules {
  /** Each allowed subject: every attribute listed must be in the certificate's subject. */
  readonly subjects: readonly (readonly (readonly [string, string])[])[];
  readonly dnsNames: ReadonlySet<string>;
  readonly uris: ReadonlySet<string>;
  readonly spiffeIds: ReadonlySet<string>;
}

export function compileCertificateRules(c: {
  subjects: readonly string[];
  dnsNames: readonly string[];
  uris: readonly string[];
  spiffeIds: readonly string[];
}): CertificateRules {
  return {
    subjects: c.subjects.map((s) => parseSubject(s) ?? []).filter((s) => s.length > 0),
    dnsNames: new Set(c.dnsNames.map((d) => d.toLowerCase())),
    uris: new Set(c.uris),
    spiffeIds: new Set(c.spiffeIds),
  };
}

/** The allowed name this certificate matched (for the log's trustedBy), or undefined. */
export function certificateAllowedBy(cert: PeerCertificate, rules: CertificateRules): string | undefined {
  for (const uri of cert.uris) {
    if (rules.spiffeIds.has(uri)) return `spiffe:${uri}`;
    if (rules.uris.has(uri)) return `uri:${uri}`;
  }
  for (const dns of cert.dnsNames) if (rules.dnsNames.has(dns.toLowerCase())) return `dns:${dns.toLowerCase()}`;
  for (const wanted of rules.subjects) {
    if (wanted.every(([name, value]) => cert.subject.some(([n, v]) => n === name && v === value)))
      return `subject:${wanted.map(([n, v]) => `${n}=${v}`).join(',')}`;
  }
  return undefined;
}

/**
 * A distinguished name as written in config or by Envoy (RFC 4514: `CN=traefik,O=ingress`,
 * `\,` and `\"` escapes, values optionally quoted). Undefined when malformed.
 */
export function parseSubject(text: string): (readonly [string, string])[] | undefined {
  const out: (readonly [string, string])[] = [];
  const parts = splitOutsideQuotes(text, ',');
  if (!parts) return undefined;
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const name = part.slice(0, eq).trim().toUpperCase();
    if (!/^[A-Z][A-Z0-9-]*$|^\d+(\.\d+)+$/.test(name)) return undefined;
    const value = unescapeValue(part.slice(eq + 1).trim());
    if (value === undefined) return undefined;
    out.push([name, value]);
  }
  return out.length > 0 ? out : undefined;
}

/** Node's `subjectaltname` (`DNS:a, URI:spiffe://td/x, IP Address:…`; ambiguous values JSON-quoted). */
export function parseSubjectAltName(text: string | undefined): { dnsNames: string[]; uris: string[] } {
  const dnsNames: string[] = [];
  const uris: string[] = [];
  const re = /(DNS|URI|IP Address|email|othername|DirName|Registered ID):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (const m of (text ?? '').matchAll(re)) {
    let value = m[2]!;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (m[1] === 'DNS') dnsNames.push(value);
    if (m[1] === 'URI') uris.push(value);
  }
  return { dnsNames, uris };
}

/** A client certificate as Node reports it (tls.TLSSocket#getPeerCertificate()). */
export function certificateOfPeer(peer: {
  subject?: Record<string, string | string[] | undefined> | undefined;
  subjectaltname?: string | undefined;
}): PeerCertificate {
  const subject: [string, string][] = [];
  for (const [name, value] of Object.entries(peer.subject ?? {})) {
    for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) subject.push([name.toUpperCase(), v]);
  }
  return { subject, ...parseSubjectAltName(peer.subjectaltname) };
}

/**
 * The certificates an x-forwarded-client-cert value reports, every element in order (the
 * last is the nearest proxy's), or why the value is refused: parsed by Envoy's grammar
 * (xfcc.ts); a Subject must also be a readable RFC 4514 name.
 */
export function parseXfcc(value: string): { ok: true; certificates: PeerCertificate[] } | { ok: false; problem: string } {
  const parsed = parseXfccHeader(value);
  if (!parsed.ok) return parsed;
  const certificates: PeerCertificate[] = [];
  for (const element of parsed.elements) {
    let subject: (readonly [string, string])[] = [];
    const dnsNames: string[] = [];
    const uris: string[] = [];
    for (const [key, text] of element) {
      // Envoy writes an empty Subject="" for a certificate without one, and URI= without a URI SAN.
      if (text === '') continue;
      if (key === 'subject') {
        const name = parseSubject(text);
        if (!name) return { ok: false, problem: 'a Subject that is not an RFC 4514 name' };
        subject = name;
      } else if (key === 'uri') uris.push(text);
      else if (key === 'dns') dnsNames.push(text);
    }
    certificates.push({ subject, dnsNames, uris });
  }
  return { ok: true, certificates };
}

/** An XFCC value: bare, or double-quoted with `\"` for a quote (Envoy escapes nothing else). */
/**
 * Splits on `sep` neither escaped by a backslash nor inside double quotes; undefined on an
 * unterminated quote (both RFC 4514 names and XFCC quote values that hold separators).
 */
function splitOutsideQuotes(text: string, sep: string): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') quoted = !quoted;
    else if (text[i] === sep && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  parts.push(text.slice(start));
  return parts;
}

/** An RFC 4514 attribute value: `\` escapes one character; a quoted value is taken whole. */
function unescapeValue(value: string): string | undefined {
  if (value.startsWith('"')) return value.length >= 2 && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : undefined;
  if (value.endsWith('\\') && !value.endsWith('\\\\')) return undefined;
  return value.replace(/\\(.)/g, '$1');
}
