// The one schema of the sidecar's configuration: types, defaults and validation all come
// from here, so docs/configuration.md, the loader and the chart cannot drift apart.
import { ALGORITHMS } from '../assertion/keys.js';
import { TOKEN_ALGORITHMS } from '../identity/token.js';
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { parseRange } from '../trust/address.js';
import { parseSubject } from '../trust/certificate.js';

// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const headerName = z
  .string()
  .regex(HEADER_NAME, 'must be a valid HTTP header name')
  .transform((s) => s.toLowerCase());
const optionalHeaderName = z.union([z.literal(''), headerName]).default('');

const port = z.number().int().min(0).max(65535);

const cidr = z.string().refine(isAddressOrCidr, 'must be an IPv4/IPv6 address or CIDR');

export function isAddressOrCidr(value: string): boolean {
  try {
    if (value.includes('/')) ipaddr.parseCIDR(value);
    else ipaddr.parse(value);
    // The trusted set is stricter (no octal, hex or short IPv4, no zones): what it cannot
    // build is refused here rather than failing the sidecar at start.
    parseRange(value);
    return true;
  } catch {
    return false;
  }
}

/** How a CIDR meets the loopback ranges 127.0.0.0/8 and ::1 (invalid ones are reported by `cidr`). */
function loopbackOverlap(value: string): 'none' | 'partly' | 'within' {
  if (!isAddressOrCidr(value)) return 'none';
  const { family, start, end } = parseRange(value);
  const [low, high] = family === 4 ? [0x7f000000n, 0x7fffffffn] : [1n, 1n];
  if (end < low || start > high) return 'none';
  return start >= low && end <= high ? 'within' : 'partly';
}

/** Never throws: a refinement that throws ends validation instead of listing every problem. */
function isHttpUrl(value: string): boolean {
  return URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);
}

const tlsFiles = {
  certFile: z.string().default(''),
  keyFile: z.string().default(''),
};

const listenSchema = z
  .strictObject({
    host: z.string().default('0.0.0.0'),
    port: port.default(8080),
    ...tlsFiles,
    // PEM CA bundle: TLS clients are asked for a certificate, checked against it (trust.require).
    clientCAFile: z.string().default(''),
    allowedOrigins: z.array(z.string().url()).default([]),
    maxWebSocketLifetimeSeconds: z.number().int().min(0).default(0),
    maxHeaderBytes: z.number().int().min(1024).max(1048576).default(16384),
    maxHeaderCount: z.number().int().min(16).max(1000).default(100),
    // 0: as many as the descriptor limit leaves room for (docs/configuration.md).
    maxConnections: z.number().int().min(0).default(0),
    headersTimeoutSeconds: z.number().positive().default(10),
    requestTimeoutSeconds: z.number().positive().default(300),
    keepAliveTimeoutSeconds: z.number().positive().default(65),
    shutdownGraceSeconds: z.number().min(0).default(25),
  })
  .superRefine((v, ctx) => {
    if (Boolean(v.certFile) !== Boolean(v.keyFile)) {
      ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'certFile and keyFile go together' });
    }
    if (v.clientCAFile && !v.certFile) {
      ctx.addIssue({ code: 'custom', path: ['clientCAFile'], message: 'client certificates need TLS: set certFile and keyFile too' });
    }
  });

/** The identity provider's own token, checked by the identity stage (docs/configuration.md). */
const tokenSchema = z
  .strictObject({
    mode: z.enum(['off', 'require', 'match']).default('off'),
    header: headerName.default('authorization'),
    issuer: z.string().default(''),
    audiences: z.array(z.string().min(1)).default([]),
    jwksUrl: z.string().default(''),
    caFile: z.string().default(''),
    algorithms: z.array(z.enum(TOKEN_ALGORITHMS)).min(1).default(['RS256', 'ES256', 'EdDSA']),
    clockSkewSeconds: z.number().int().min(0).max(300).default(30),
    userClaim: z.string().min(1).default('email'),
    groupsClaim: z.string().default('groups'),
    refreshSeconds: z.number().int().min(1).default(300),
    staleAfterSeconds: z.number().int().min(1).default(3600),
  })
  .superRefine((v, ctx) => {
    if (v.mode === 'off') return;
    if (!isHttpUrl(v.issuer)) ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'the provider\'s issuer URL is required when mode is not off' });
    if (v.audiences.length === 0) ctx.addIssue({ code: 'custom', path: ['audiences'], message: 'at least one audience (the client id) is required when mode is not off' });
    if (v.jwksUrl !== '' && !isHttpUrl(v.jwksUrl)) ctx.addIssue({ code: 'custom', path: ['jwksUrl'], message: 'must be an http:// or https:// URL' });
    if (v.staleAfterSeconds <= v.refreshSeconds) ctx.addIssue({ code: 'custom', path: ['staleAfterSeconds'], message: 'must be longer than refreshSeconds' });
  })
  .prefault({});

/** The certificates trusted as proxies: any listed name is enough. */
const clientCertificatesSchema = z
  .strictObject({
    // tls: the connection's own client certificate; xfcc: the one a mesh proxy reports.
    from: z.enum(['tls', 'xfcc']).default('tls'),
    subjects: z.array(z.string().refine((s) => parseSubject(s) !== undefined, 'must be a distinguished name such as CN=traefik,O=ingress')).default([]),
    dnsNames: z.array(z.string().min(1)).default([]),
    uris: z.array(z.string().refine((s) => URL.canParse(s), 'must be a URI')).default([]),
    spiffeIds: z.array(z.string().regex(/^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$/, 'must be a SPIFFE ID (spiffe://trust-domain/path)')).default([]),
  })
  .prefault({});

const discoverySchema = z.strictObject({
  nodePodCIDRs: z
    .strictObject({ enabled: z.boolean().default(false), nodeSelector: z.string().default('') })
    .prefault({}),
  pods: z
    .array(z.strictObject({ namespace: z.string().min(1), labelSelector: z.string().min(1) }))
    .default([]),
  endpointSlices: z
    .array(z.strictObject({ namespace: z.string().min(1), service: z.string().min(1) }))
    .default([]),
  nodeAddresses: z
    .strictObject({
      enabled: z.boolean().default(false),
      types: z
        .array(z.enum(['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS', 'ExternalDNS']))
        .default(['InternalIP']),
    })
    .prefault({}),
  onStale: z.enum(['keep', 'deny']).default('keep'),
  staleAfterSeconds: z.number().int().positive().default(300),
});

const sections = z.strictObject({
  listen: listenSchema.prefault({}),
  admin: z
    .strictObject({ host: z.string().default('0.0.0.0'), port: port.default(9090) })
    .prefault({}),
  upstream: z
    .strictObject({
      url: z.string().refine(isHttpUrl, 'must be an http:// or https:// URL').default('http://127.0.0.1:18789'),
      connectTimeoutSeconds: z.number().positive().default(5),
      timeoutSeconds: z.number().positive().default(60),
      maxSockets: z.number().int().positive().default(256),
    })
    .prefault({}),
  trust: z
    .strictObject({
      cidrs: z.array(cidr).default([]),
      allowLoopback: z.boolean().default(false),
      discovery: discoverySchema.prefault({}),
      // A peer is trusted by its address, its certificate, either, or only both (docs/configuration.md).
      require: z.enum(['address', 'certificate', 'either', 'both']).default('address'),
      clientCertificates: clientCertificatesSchema,
    })
    .superRefine((v, ctx) => {
      // allowLoopback once trusted every loopback peer by itself; a config written for that
      // meaning would now refuse everyone, so it is refused at start with the fix named.
      if (v.allowLoopback && !v.cidrs.some((c) => loopbackOverlap(c) !== 'none')) {
        ctx.addIssue({ code: 'custom', path: ['allowLoopback'], message: 'allowLoopback no longer trusts loopback peers by itself: also list the loopback addresses to trust in trust.cidrs (e.g. 127.0.0.1/32), see docs/configuration.md "Loopback peers"' });
      }
      const loopback = v.cidrs.filter((c) => loopbackOverlap(c) === 'within');
      if (!v.allowLoopback && loopback.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['cidrs'], message: `${loopback.join(', ')} trusts nothing while allowLoopback is false: set allowLoopback: true or remove it` });
      }
    })
    .prefault({}),
  identity: z
    .strictObject({
      userHeader: headerName.default('x-auth-request-email'),
      emailHeader: optionalHeaderName,
      groupsHeader: optionalHeaderName,
      requiredHeaders: z.array(headerName).default([]),
      maxValueBytes: z.number().int().min(16).max(8192).default(256),
      maxGroups: z.number().int().min(1).max(1000).default(100),
      allowUsers: z.array(z.string().min(1)).default([]),
      allowGroups: z.array(z.string().min(1)).default([]),
      allowEmailDomains: z.array(z.string().min(1).transform((s) => s.toLowerCase())).default([]),
      token: tokenSchema,
    })
    .prefault({}),
  assertion: z
    .strictObject({
      header: headerName.default('x-trusted-proxy-assertion'),
      algorithm: z.enum(ALGORITHMS).default('HS256'),
      keysDir: z.string().min(1).default('/etc/trusted-proxy-sidecar/keys'),
      activeKeyId: z.string().default(''),
      issuer: z.string().min(1).default('trusted-proxy-sidecar'),
      audience: z.string().min(1).default('gateway'),
      ttlSeconds: z.number().int().min(1).max(3600).default(30),
      jwksFile: z.string().default(''),
    })
    .prefault({}),
  gateway: z
    .strictObject({
      userHeader: optionalHeaderName.default('x-forwarded-user'),
      scopesHeader: optionalHeaderName,
      scopes: z
        .strictObject({
          default: z.array(z.string().min(1)).default([]),
          byGroup: z.record(z.string(), z.array(z.string().min(1))).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
  sanitise: z
    .strictObject({
      // Extra inbound headers to strip, compared like the built-in ones (case, `_`, `.`).
      extraNames: z.array(headerName).default([]),
      extraPrefixes: z.array(headerName).default([]),
    })
    .prefault({}),
  // What one client may hold, so that no identity starves the others and no connection is
  // kept for a client that stopped reading or sending (docs/configuration.md, "Limits").
  limits: z
    .strictObject({
      identityPoolShare: z.number().gt(0).max(1).default(0.25),
      maxWebSocketsPerIdentity: z.number().int().min(1).default(64),
      queueTimeoutSeconds: z.number().positive().default(10),
      clientStallTimeoutSeconds: z.number().positive().default(30),
      maxRequestBodyBytes: z.number().int().min(0).default(0),
    })
    .prefault({}),
  forwardAuth: z
    .strictObject({
      enabled: z.boolean().default(false),
      path: z.string().regex(/^\/[^?#\s]*$/, 'must be an absolute path').default('/forward-auth'),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      identity: z.enum(['plain', 'hash', 'omit']).default('plain'),
    })
    .prefault({}),
});

export const configSchema = sections.superRefine(checkAcrossSections);

/** Checks across sections, reported with the others. */
function checkAcrossSections(v: z.output<typeof sections>, ctx: z.RefinementCtx): void {
  const { require, clientCertificates: certs } = v.trust;
  const names = certs.subjects.length + certs.dnsNames.length + certs.uris.length + certs.spiffeIds.length;
  if (require !== 'address' && names === 0) {
    ctx.addIssue({ code: 'custom', path: ['trust', 'clientCertificates'], message: `trust.require is ${require}: list the certificates to trust (subjects, dnsNames, uris or spiffeIds)` });
  }
  if (require !== 'address' && certs.from === 'tls' && !v.listen.clientCAFile) {
    ctx.addIssue({ code: 'custom', path: ['listen', 'clientCAFile'], message: `trust.require is ${require}: set the CA that signs the proxies' client certificates (and certFile, keyFile)` });
  }
  if (require === 'address' && v.listen.clientCAFile) {
    ctx.addIssue({ code: 'custom', path: ['listen', 'clientCAFile'], message: 'client certificates are asked for but never checked: set trust.require' });
  }
  // The header is believable only from the mesh proxy, known by its address.
  if (certs.from === 'xfcc' && require !== 'both') {
    ctx.addIssue({ code: 'custom', path: ['trust', 'require'], message: 'with clientCertificates.from: xfcc it must be both: the mesh proxy by its address, the client by the certificate it reports' });
  }
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type ListenConfig = Config['listen'];
export type IdentityConfig = Config['identity'];
export type TokenConfig = Config['identity']['token'];
export type AssertionConfig = Config['assertion'];
export type GatewayConfig = Config['gateway'];
export type DiscoveryConfig = Config['trust']['discovery'];
export type LimitsConfig = Config['limits'];
