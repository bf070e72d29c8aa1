// The one schema of the sidecar's configuration: types, defaults and validation all come
// from here, so docs/configuration.md, the loader and the chart cannot drift apart.
import ipaddr from 'ipaddr.js';
import * as z from './zod.js';
import { headerName, optionalHeaderName } from './header-name.js';
import { parseRange } from '../trust/address.js';
import { parseSubject } from '../trust/certificate.js';
import { unambiguousPath } from '../routes/match.js';

/** The assertion's signing algorithms (assertion/keys.ts). */
export const ALGORITHMS = ['HS256', 'EdDSA', 'ES256'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];
/** What an identity provider's token may be signed with (identity/token.ts). */
export const TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'] as const;
export type TokenAlgorithm = (typeof TOKEN_ALGORITHMS)[number];

const port = z
  .number()
  .check(
    z.int(),
    z.minimum(0, 'not a port: ports run from 0 (any free one) to 65535'),
    z.maximum(65535, 'not a port: ports run from 0 (any free one) to 65535'),
  );
const seconds = z.number().check(z.positive());
const count = (min: number) => z.number().check(z.int(), z.minimum(min));
const nonEmpty = z.string().check(z.minLength(1));
const text = (value: string) => z._default(z.string(), value);
const flag = (value: boolean) => z._default(z.boolean(), value);
const list = <T extends z.core.SomeType>(item: T) => z._default(z.array(item), []);

// An OAuth scope-token (RFC 6749, 3.3) without a comma: the assertion's `scope` joins them
// with spaces, the scopes header with commas, and each must split back into the same list.
const scopeToken = z
  .string()
  .check(z.regex(/^[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+$/, 'must be a scope: printable ASCII without spaces, quotes, backslashes or commas'));

const cidr = z.string().check(z.refine(isAddressOrCidr, 'must be an IPv4/IPv6 address or CIDR'));
// The refinement's shape for JSON Schema (the chart's values.schema.json, so that Helm
// refuses 10.0.0.0/33 at install): a dotted quad, or hex and colons, with a prefix in range.
z.globalRegistry.add(cidr, {
  pattern:
    '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(/(3[0-2]|[12]?[0-9]))?$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$',
});

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

// A route (routes/match.ts): the path is one that reads one way, as a request's must to
// match it, so a route that no request could take is refused rather than silently idle.
const route = z.strictObject({
  name: z.string().check(z.regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes (at most 63)')),
  path: z
    .string()
    .check(
      z.refine(
        (p) => p === '/' || (unambiguousPath(p) === p && !p.endsWith('/')),
        'must be an absolute path that reads one way: no trailing slash, query, percent-escapes, "//", ".", "..", "\\", ";" or trailing dot',
      ),
    ),
  match: z._default(z.enum(['exact', 'prefix']), 'prefix'),
  methods: list(z.string().check(z.regex(/^[A-Z]+$/, 'must be a method in upper case, as sent'))),
  mode: z.enum(['sso', 'machine', 'deny']),
  // Bounds a machine route's requests beside the gateway's own: -1 takes limits.maxRequestBodyBytes.
  maxBodyBytes: z._default(count(-1), -1),
  requestsPerMinutePerSource: z._default(count(0), 0),
  untrustedSources: flag(false),
  scopes: list(scopeToken),
});

/** Never throws: a refinement that throws ends validation instead of listing every problem. */
function isHttpUrl(value: string): boolean {
  return URL.canParse(value) && /^https?:$/.test(new URL(value).protocol);
}

const tlsFiles = {
  certFile: text(''),
  keyFile: text(''),
};

const listenSchema = z
  .strictObject({
    host: text('0.0.0.0'),
    port: z._default(port, 8080),
    ...tlsFiles,
    // PEM CA bundle: TLS clients are asked for a certificate, checked against it (trust.require).
    clientCAFile: text(''),
    allowedOrigins: list(z.url()),
    maxWebSocketLifetimeSeconds: z._default(count(0), 0),
    maxHeaderBytes: z._default(count(1024).check(z.maximum(1048576)), 16384),
    maxHeaderCount: z._default(count(16).check(z.maximum(1000)), 100),
    // 0: as many as the descriptor and memory limits leave room for (docs/configuration.md).
    maxConnections: z._default(count(0), 0),
    // Of those, the most from peers refused by address alone (server/connection-quota.ts).
    maxUntrustedConnections: z._default(count(0), 64),
    headersTimeoutSeconds: z._default(seconds, 10),
    requestTimeoutSeconds: z._default(seconds, 300),
    keepAliveTimeoutSeconds: z._default(seconds, 65),
    // After a drain begins (the pod is going away), how long the port still accepts new
    // connections, each answered with Connection: close, while the failed readiness reaches
    // every node's kube-proxy; then it stops listening (docs/kubernetes.md, "Rollouts").
    drainSeconds: z._default(z.number().check(z.minimum(0)), 5),
    shutdownGraceSeconds: z._default(z.number().check(z.minimum(0)), 25),
  })
  .check(
    z.superRefine((v, ctx) => {
      if (Boolean(v.certFile) !== Boolean(v.keyFile)) {
        ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'certFile and keyFile go together' });
      }
      if (v.maxConnections > 0 && v.maxUntrustedConnections >= v.maxConnections) {
        ctx.addIssue({
          code: 'custom',
          path: ['maxUntrustedConnections'],
          message: `must be below maxConnections (${v.maxConnections}), or peers refused by address could hold every connection`,
        });
      }
      if (v.clientCAFile && !v.certFile) {
        ctx.addIssue({ code: 'custom', path: ['clientCAFile'], message: 'client certificates need TLS: set certFile and keyFile too' });
      }
    }),
  );

/** The identity provider's own token, checked by the identity stage (docs/configuration.md). */
const tokenSchema = z
  .strictObject({
    mode: z._default(z.enum(['off', 'require', 'match']), 'off'),
    header: z._default(headerName, 'authorization'),
    issuer: text(''),
    audiences: list(nonEmpty),
    jwksUrl: text(''),
    caFile: text(''),
    algorithms: z._default(z.array(z.enum(TOKEN_ALGORITHMS)).check(z.minLength(1)), ['RS256', 'ES256', 'EdDSA']),
    clockSkewSeconds: z._default(count(0).check(z.maximum(300)), 30),
    userClaim: z._default(nonEmpty, 'email'),
    groupsClaim: text('groups'),
    refreshSeconds: z._default(count(1), 300),
    staleAfterSeconds: z._default(count(1), 3600),
  })
  .check(
    z.superRefine((v, ctx) => {
      if (v.mode === 'off') return;
      if (!isHttpUrl(v.issuer)) ctx.addIssue({ code: 'custom', path: ['issuer'], message: "the provider's issuer URL is required when mode is not off" });
      if (v.audiences.length === 0)
        ctx.addIssue({ code: 'custom', path: ['audiences'], message: 'at least one audience (the client id) is required when mode is not off' });
      if (v.jwksUrl !== '' && !isHttpUrl(v.jwksUrl)) ctx.addIssue({ code: 'custom', path: ['jwksUrl'], message: 'must be an http:// or https:// URL' });
      if (v.staleAfterSeconds <= v.refreshSeconds) ctx.addIssue({ code: 'custom', path: ['staleAfterSeconds'], message: 'must be longer than refreshSeconds' });
    }),
  );

/** The certificates trusted as proxies: any listed name is enough. */
const clientCertificatesSchema = z.strictObject({
  // tls: the connection's own client certificate; xfcc: the one a mesh proxy reports.
  from: z._default(z.enum(['tls', 'xfcc']), 'tls'),
  subjects: list(z.string().check(z.refine((s) => parseSubject(s) !== undefined, 'must be a distinguished name such as CN=traefik,O=ingress'))),
  dnsNames: list(nonEmpty),
  uris: list(z.string().check(z.refine((s) => URL.canParse(s), 'must be a URI'))),
  spiffeIds: list(
    z.string().check(z.regex(/^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*$/, 'must be a SPIFFE ID (spiffe://trust-domain/path)')),
  ),
});

const discoverySchema = z.strictObject({
  nodePodCIDRs: z.prefault(z.strictObject({ enabled: flag(false), nodeSelector: text('') }), {}),
  pods: list(z.strictObject({ namespace: nonEmpty, labelSelector: nonEmpty })),
  endpointSlices: list(z.strictObject({ namespace: nonEmpty, service: nonEmpty })),
  nodeAddresses: z.prefault(
    z.strictObject({
      enabled: flag(false),
      types: z._default(z.array(z.enum(['InternalIP', 'ExternalIP', 'Hostname', 'InternalDNS', 'ExternalDNS'])), ['InternalIP']),
    }),
    {},
  ),
  onStale: z._default(z.enum(['keep', 'deny']), 'keep'),
  staleAfterSeconds: z._default(z.number().check(z.int(), z.positive()), 300),
});

const trustSchema = z
  .strictObject({
    cidrs: list(cidr),
    allowLoopback: flag(false),
    discovery: z.prefault(discoverySchema, {}),
    // A peer is trusted by its address, its certificate, either, or only both (docs/configuration.md).
    require: z._default(z.enum(['address', 'certificate', 'either', 'both']), 'address'),
    clientCertificates: z.prefault(clientCertificatesSchema, {}),
  })
  .check(
    z.superRefine((v, ctx) => {
      // allowLoopback once trusted every loopback peer by itself; a config written for that
      // meaning would now refuse everyone, so it is refused at start with the fix named.
      if (v.allowLoopback && !v.cidrs.some((c) => loopbackOverlap(c) !== 'none')) {
        ctx.addIssue({
          code: 'custom',
          path: ['allowLoopback'],
          message:
            'allowLoopback no longer trusts loopback peers by itself: also list the loopback addresses to trust in trust.cidrs (e.g. 127.0.0.1/32), see docs/configuration.md "Loopback peers"',
        });
      }
      const loopback = v.cidrs.filter((c) => loopbackOverlap(c) === 'within');
      if (!v.allowLoopback && loopback.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['cidrs'],
          message: `${loopback.join(', ')} trusts nothing while allowLoopback is false: set allowLoopback: true or remove it`,
        });
      }
    }),
  );

const sections = z.strictObject({
  listen: z.prefault(listenSchema, {}),
  admin: z.prefault(z.strictObject({ host: text('0.0.0.0'), port: z._default(port, 9090) }), {}),
  upstream: z.prefault(
    z.strictObject({
      url: z._default(z.string().check(z.refine(isHttpUrl, 'must be an http:// or https:// URL')), 'http://127.0.0.1:18789'),
      connectTimeoutSeconds: z._default(seconds, 5),
      timeoutSeconds: z._default(seconds, 60),
      maxSockets: z._default(z.number().check(z.int(), z.positive()), 256),
    }),
    {},
  ),
  trust: z.prefault(trustSchema, {}),
  identity: z.prefault(
    z.strictObject({
      userHeader: z._default(headerName, 'x-auth-request-email'),
      emailHeader: optionalHeaderName,
      groupsHeader: optionalHeaderName,
      requiredHeaders: list(headerName),
      maxValueBytes: z._default(count(16).check(z.maximum(8192)), 256),
      maxGroups: z._default(count(1).check(z.maximum(1000)), 100),
      allowUsers: list(nonEmpty),
      allowGroups: list(nonEmpty),
      allowEmailDomains: list(nonEmpty.check(z.toLowerCase())),
      token: z.prefault(tokenSchema, {}),
    }),
    {},
  ),
  assertion: z.prefault(
    z.strictObject({
      header: z._default(headerName, 'x-trusted-proxy-assertion'),
      algorithm: z._default(z.enum(ALGORITHMS), 'HS256'),
      keysDir: z._default(nonEmpty, '/etc/trusted-proxy-sidecar/keys'),
      activeKeyId: text(''),
      issuer: z._default(nonEmpty, 'trusted-proxy-sidecar'),
      audience: z._default(nonEmpty, 'gateway'),
      ttlSeconds: z._default(count(1).check(z.maximum(3600)), 30),
      jwksFile: text(''),
    }),
    {},
  ),
  gateway: z.prefault(
    z.strictObject({
      userHeader: z._default(optionalHeaderName, 'x-forwarded-user'),
      scopesHeader: optionalHeaderName,
      scopes: z.prefault(
        z.strictObject({
          default: list(scopeToken),
          byGroup: z._default(z.record(z.string(), z.array(scopeToken)), {}),
        }),
        {},
      ),
    }),
    {},
  ),
  sanitise: z.prefault(
    z.strictObject({
      // Extra inbound headers to strip, compared like the built-in ones (case, `_`, `.`).
      extraNames: list(headerName),
      extraPrefixes: list(headerName),
    }),
    {},
  ),
  // What one client may hold, so that no identity starves the others and no connection is
  // kept for a client that stopped reading or sending (docs/configuration.md, "Limits").
  limits: z.prefault(
    z.strictObject({
      identityPoolShare: z._default(z.number().check(z.gt(0), z.maximum(1)), 0.25),
      maxWebSocketsPerIdentity: z._default(count(1), 64),
      queueTimeoutSeconds: z._default(seconds, 10),
      clientStallTimeoutSeconds: z._default(seconds, 30),
      maxRequestBodyBytes: z._default(count(0), 0),
    }),
    {},
  ),
  // Ordered, the first that matches a request decides how it passes (routes/match.ts); a
  // request on none needs an SSO identity.
  routes: list(route),
  forwardAuth: z.prefault(
    z.strictObject({
      enabled: flag(false),
      path: z._default(z.string().check(z.regex(/^\/[^?#\s]*$/, 'must be an absolute path')), '/forward-auth'),
    }),
    {},
  ),
  logging: z.prefault(
    z.strictObject({
      level: z._default(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']), 'info'),
      identity: z._default(z.enum(['plain', 'hash', 'omit']), 'plain'),
    }),
    {},
  ),
});

export const configSchema = sections.check(z.superRefine(checkAcrossSections));

/** Checks across sections, reported with the others. */
function checkAcrossSections(v: z.output<typeof sections>, ctx: z.core.$RefinementCtx<z.output<typeof sections>>): void {
  const { require, clientCertificates: certs } = v.trust;
  const names = certs.subjects.length + certs.dnsNames.length + certs.uris.length + certs.spiffeIds.length;
  if (require !== 'address' && names === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['trust', 'clientCertificates'],
      message: `trust.require is ${require}: list the certificates to trust (subjects, dnsNames, uris or spiffeIds)`,
    });
  }
  if (require !== 'address' && certs.from === 'tls' && !v.listen.clientCAFile) {
    ctx.addIssue({
      code: 'custom',
      path: ['listen', 'clientCAFile'],
      message: `trust.require is ${require}: set the CA that signs the proxies' client certificates (and certFile, keyFile)`,
    });
  }
  if (require === 'address' && v.listen.clientCAFile) {
    ctx.addIssue({ code: 'custom', path: ['listen', 'clientCAFile'], message: 'client certificates are asked for but never checked: set trust.require' });
  }
  const seen = new Set<string>();
  v.routes.forEach((r, i) => {
    if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `another route is named ${r.name}` });
    seen.add(r.name);
    if (r.mode === 'machine' && r.path === '/' && r.match === 'prefix')
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'path'], message: 'a machine route over every path lets every request through without SSO' });
    if (r.mode !== 'machine' && (r.untrustedSources || r.scopes.length > 0 || r.requestsPerMinutePerSource > 0 || r.maxBodyBytes >= 0))
      ctx.addIssue({
        code: 'custom',
        path: ['routes', i, 'mode'],
        message: "untrustedSources, scopes, requestsPerMinutePerSource and maxBodyBytes are for machine routes (an sso route takes the user's)",
      });
  });
  // The header is believable only from the mesh proxy, known by its address.
  if (certs.from === 'xfcc' && require !== 'both') {
    ctx.addIssue({
      code: 'custom',
      path: ['trust', 'require'],
      message: 'with clientCertificates.from: xfcc it must be both: the mesh proxy by its address, the client by the certificate it reports',
    });
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
export type RouteConfig = Config['routes'][number];
