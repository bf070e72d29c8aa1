// doctor's rules, one per finding code, in the order a request meets what they check: who
// the sidecar trusts, where the gateway listens, trusted-proxy auth as the gateway evaluates it, devices and pairing,
// browser origins, scopes. Each rule reads the two configs and says, per problem, where it
// is, what the user will see because of it, and the fix. docs/openclaw.md has a row for
// each, and test/doctor a case that provokes each alone.
import type { Config } from '../config/schema.js';
import { matchRoute } from '../routes/match.js';
import { parseRange } from '../trust/address.js';
import {
  ADMIN_SCOPE,
  DEFAULT_GATEWAY_PORT,
  entryCovers,
  headersSidecarSends,
  originOf,
  SCOPES_HEADER,
  sidecarSourceAddresses,
  upstreamPort,
} from '../openclaw/facts.js';

export interface Finding {
  severity: 'error' | 'warning';
  code: string;
  path: string;
  problem: string;
  userSees: string;
  fix: string;
}

/** What one rule reports of one problem; the rule adds its code and severity. */
export type Problem = Pick<Finding, 'path' | 'problem' | 'userSees' | 'fix'>;

/** The two configs as the rules read them. */
export interface Subject {
  readonly sidecar: Config;
  /** A value in the gateway's config at a dotted path; undefined when any step is missing. */
  at(path: string): unknown;
  /** The string list at a dotted path, or undefined. */
  strings(path: string): string[] | undefined;
  /** The origin browsers use: --public-origin, else none (the sidecar's allowedOrigins stand in). */
  readonly publicOrigin: string | undefined;
  /** The most addresses one trusted CIDR may cover before it reads as a pod or node network. */
  readonly maxTrustedAddresses: number;
  /** The cluster's pod networks when doctor was asked to read them (--cluster), else none. */
  readonly podNetworks: readonly PodNetwork[];
}

/** A node's pod CIDR, as the cluster API lists it. */
export interface PodNetwork {
  readonly node: string;
  readonly cidr: string;
}

export interface Rule {
  readonly code: string;
  readonly severity: Finding['severity'];
  check(subject: Subject): Problem[];
}

const TP = 'gateway.auth.trustedProxy';
const none: Problem[] = [];

export const RULES: readonly Rule[] = [
  {
    code: 'trusted_cidr_too_broad',
    severity: 'error',
    check: ({ sidecar, maxTrustedAddresses, podNetworks }) =>
      sidecar.trust.cidrs.flatMap((cidr, i) => {
        const { family, start, end } = parseRange(cidr);
        const addresses = end - start + 1n;
        // A node's pod CIDR is often a /24 itself: the width bound alone would let it pass.
        const covered = podNetworks.filter((n) => {
          const pod = parseRange(n.cidr);
          return pod.family === family && start <= pod.start && end >= pod.end;
        });
        if (addresses <= BigInt(maxTrustedAddresses) && covered.length === 0) return [];
        const why =
          covered.length > 0
            ? `covers the pod network of ${covered.map((n) => `node ${n.node} (${n.cidr})`).join(', ')}`
            : `trusts ${addresses} addresses (more than ${maxTrustedAddresses}): a range that wide is a pod or node network, not an ingress`;
        return [
          {
            path: `sidecar:trust.cidrs[${i}]`,
            problem: `${cidr} ${why}`,
            userSees: 'nothing; but any pod in that range can send identity headers and name any user to the gateway, the hole the sidecar exists to close',
            fix: 'trust only the ingress: trust.discovery of its pods or EndpointSlices (docs/kubernetes.md), or its exact addresses',
          },
        ];
      }),
  },
  {
    code: 'loopback_trusted_by_address',
    severity: 'error',
    check: ({ sidecar: { listen, trust } }) => {
      const onLoopbackOnly = ['127.0.0.1', '::1', 'localhost'].includes(listen.host);
      if (!trust.allowLoopback || onLoopbackOnly || trust.require === 'certificate' || trust.require === 'both') return none;
      return [
        {
          path: 'sidecar:trust.allowLoopback',
          problem: `a loopback peer is trusted by its address alone (trust.require: ${trust.require}) while the sidecar listens on ${listen.host}`,
          userSees:
            "nothing; but in a pod every container is a loopback peer, and behind a service mesh every client arrives from the mesh proxy's loopback address: any of them can name any user",
          fix: 'exclude the data port from the mesh\'s inbound capture and trust the ingress itself; or trust the mesh proxy by address and the client by the certificate it reports: trust.require: both, trust.clientCertificates.from: xfcc (docs/kubernetes.md, "Service meshes")',
        },
      ];
    },
  },
  {
    // The mesh proxy is known only by a loopback address, which any process in the pod's
    // network namespace can bind without privileges.
    code: 'xfcc_trusts_every_container',
    severity: 'warning',
    check: ({ sidecar: { trust } }) => {
      if (trust.clientCertificates.from !== 'xfcc') return none;
      return [
        {
          path: 'sidecar:trust.clientCertificates.from',
          problem: `the certificate is read from x-forwarded-client-cert, believed from ${trust.cidrs.filter((c) => c.startsWith('127.') || c === '::1').join(', ') || 'a loopback address'}: any process in the pod can bind that address and write the header`,
          userSees:
            "nothing; but every container of the pod (OpenClaw runs agent tools in its own) can name the ingress's certificate and so any user: from: xfcc trusts the whole pod as much as the sidecar",
          fix: 'keep the data port out of the mesh\'s inbound capture (the chart does: mesh.excludeDataPort) and trust the ingress by its own address or certificate; keep from: xfcc only for a pod whose every container is as trusted as the sidecar (docs/kubernetes.md, "Service meshes")',
        },
      ];
    },
  },
  {
    code: 'gateway_mode_not_local',
    severity: 'error',
    check: ({ at }) => {
      const mode = at('gateway.mode');
      if (mode === 'local') return none;
      return [
        {
          path: 'openclaw:gateway.mode',
          problem: `gateway.mode is ${JSON.stringify(mode)}, not "local"`,
          userSees: 'the gateway does not start as a server, so the sidecar answers 502 upstream_unavailable',
          fix: 'set gateway.mode to "local"',
        },
      ];
    },
  },
  {
    code: 'bind_not_loopback',
    severity: 'error',
    check: ({ at }) => {
      const bind = at('gateway.bind') ?? 'loopback';
      if (bind === 'loopback') return none;
      return [
        {
          path: 'openclaw:gateway.bind',
          problem: `gateway.bind is ${JSON.stringify(bind)}: the gateway listens beyond the pod's loopback`,
          userSees: 'nothing at first; but anyone who reaches the pod address on the gateway port can send identity headers around the sidecar and SSO',
          fix: 'set gateway.bind to "loopback" and reach the gateway only through the sidecar',
        },
      ];
    },
  },
  {
    code: 'sidecar_upstream_not_loopback',
    severity: 'error',
    check: ({ sidecar }) => {
      if (sidecarSourceAddresses(sidecar)) return none;
      return [
        {
          path: 'sidecar:upstream.url',
          problem: `the sidecar forwards to ${sidecar.upstream.url}, not to the pod's loopback`,
          userSees: 'with the gateway bound to loopback, 502 upstream_unavailable; otherwise the gateway is reachable around the sidecar',
          fix: 'set upstream.url to http://127.0.0.1:<gateway port>',
        },
      ];
    },
  },
  {
    code: 'port_mismatch',
    severity: 'error',
    check: ({ sidecar, at }) => {
      const port = at('gateway.port') ?? DEFAULT_GATEWAY_PORT;
      if (port === upstreamPort(sidecar)) return none;
      return [
        {
          path: 'openclaw:gateway.port',
          problem: `the gateway listens on port ${JSON.stringify(port)} but the sidecar forwards to ${sidecar.upstream.url}`,
          userSees: 'every request ends in 502 upstream_unavailable from the sidecar',
          fix: `set gateway.port to ${upstreamPort(sidecar)} (or the sidecar's upstream.url to the gateway's port)`,
        },
      ];
    },
  },
  {
    code: 'auth_mode_not_trusted_proxy',
    severity: 'error',
    check: ({ at }) => {
      const mode = at('gateway.auth.mode');
      if (mode === 'trusted-proxy') return none;
      return [
        {
          path: 'openclaw:gateway.auth.mode',
          problem: `gateway.auth.mode is ${JSON.stringify(mode)}, not "trusted-proxy"`,
          userSees: 'the Control UI asks for a token or password after SSO; the identity the sidecar sends is ignored',
          fix: 'set gateway.auth.mode to "trusted-proxy"',
        },
      ];
    },
  },
  {
    code: 'auth_token_with_trusted_proxy',
    severity: 'error',
    check: ({ at }) => {
      if (at('gateway.auth.mode') !== 'trusted-proxy' || at('gateway.auth.token') === undefined) return none;
      return [
        {
          path: 'openclaw:gateway.auth.token',
          problem: 'a shared token is configured together with trusted-proxy mode',
          userSees: 'the gateway refuses to start, so the sidecar answers 502 upstream_unavailable',
          fix: 'remove gateway.auth.token (and OPENCLAW_GATEWAY_TOKEN)',
        },
      ];
    },
  },
  {
    code: 'trusted_proxies_missing_loopback',
    severity: 'error',
    check: ({ sidecar, strings }) => {
      const trustedProxies = strings('gateway.trustedProxies') ?? [];
      const missing = (sidecarSourceAddresses(sidecar) ?? []).filter((a) => !trustedProxies.some((e) => entryCovers(e, a)));
      if (missing.length === 0) return none;
      return [
        {
          path: 'openclaw:gateway.trustedProxies',
          problem: `${missing.join(' and ')} (where the sidecar connects from) is not in gateway.trustedProxies`,
          userSees:
            trustedProxies.length === 0
              ? 'every request is refused: unauthorized (trusted_proxy_no_proxies_configured)'
              : 'every request is refused: unauthorized (trusted_proxy_untrusted_source)',
          fix: 'set gateway.trustedProxies to ["127.0.0.1", "::1"]',
        },
      ];
    },
  },
  {
    code: 'allow_loopback_off',
    severity: 'error',
    check: ({ at }) => {
      if (at(`${TP}.allowLoopback`) === true) return none;
      return [
        {
          path: `openclaw:${TP}.allowLoopback`,
          problem: 'the gateway refuses trusted-proxy requests from loopback, where the sidecar is',
          userSees: 'every request is refused: unauthorized (trusted_proxy_loopback_source)',
          fix: `set ${TP}.allowLoopback to true`,
        },
      ];
    },
  },
  {
    code: 'required_header_not_sent',
    severity: 'error',
    check: ({ sidecar, strings }) => {
      const sent = headersSidecarSends(sidecar);
      return (strings(`${TP}.requiredHeaders`) ?? []).flatMap((name, i) =>
        sent.has(name.trim().toLowerCase())
          ? []
          : [
              {
                path: `openclaw:${TP}.requiredHeaders[${i}]`,
                problem: `the gateway requires header ${name}, which the sidecar does not send`,
                userSees: `every request is refused: unauthorized (trusted_proxy_missing_header_${name})`,
                fix: `remove ${name} from requiredHeaders; require ${sidecar.assertion.header} and x-forwarded-proto instead`,
              },
            ],
      );
    },
  },
  {
    code: 'assertion_header_not_required',
    severity: 'warning',
    check: ({ sidecar, strings }) => {
      const required = (strings(`${TP}.requiredHeaders`) ?? []).map((h) => h.trim().toLowerCase());
      if (required.includes(sidecar.assertion.header)) return none;
      return [
        {
          path: `openclaw:${TP}.requiredHeaders`,
          problem: `the gateway does not require ${sidecar.assertion.header}, the header only the sidecar sets`,
          userSees: 'nothing; but a request that did not pass the sidecar is not told apart by the gateway',
          fix: `add ${sidecar.assertion.header} to requiredHeaders`,
        },
      ];
    },
  },
  {
    code: 'user_header_mismatch',
    severity: 'error',
    check: ({ sidecar, at }) => {
      const sent = sidecar.gateway.userHeader;
      const userHeader = at(`${TP}.userHeader`);
      const read = typeof userHeader === 'string' ? userHeader.trim().toLowerCase() : '';
      if (!sent || read === sent) return none;
      const stripped = [sidecar.identity.userHeader, sidecar.identity.emailHeader, sidecar.identity.groupsHeader].includes(read);
      return [
        {
          path: `openclaw:${TP}.userHeader`,
          problem:
            `the gateway reads the user from ${JSON.stringify(userHeader)} but the sidecar sends it in ${sent}` +
            (stripped ? ` (${read} is the SSO proxy's header, which the sidecar strips)` : ''),
          userSees: 'every request is refused after SSO: unauthorized (trusted_proxy_user_missing)',
          fix: `set ${TP}.userHeader to "${sent}"`,
        },
      ];
    },
  },
  {
    code: 'sidecar_user_header_off',
    severity: 'error',
    check: ({ sidecar }) => {
      if (sidecar.gateway.userHeader) return none;
      return [
        {
          path: 'sidecar:gateway.userHeader',
          problem: 'the sidecar sends the gateway no plain user header',
          userSees: 'every request is refused: unauthorized (trusted_proxy_user_missing)',
          fix: "set the sidecar's gateway.userHeader (for example x-forwarded-user) and the gateway's userHeader to the same name",
        },
      ];
    },
  },
  {
    code: 'allow_users_case',
    severity: 'warning',
    check: ({ sidecar, strings }) => {
      const allowUsers = strings(`${TP}.allowUsers`) ?? [];
      const capitals = allowUsers.flatMap((user, i) =>
        user.includes('@') && user !== user.toLowerCase()
          ? [
              {
                path: `openclaw:${TP}.allowUsers[${i}]`,
                problem: `${user} has capitals, but the gateway compares users exactly while email addresses are case-insensitive`,
                userSees: `${user.toLowerCase()} passes SSO and the sidecar, then is refused by the gateway (trusted_proxy_user_not_allowed)`,
                fix: `write the address as the identity provider sends it, usually lower case (${user.toLowerCase()})`,
              },
            ]
          : [],
      );
      const spelledOtherwise =
        allowUsers.length === 0
          ? []
          : sidecar.identity.allowUsers.flatMap((user, i) =>
              user.includes('@') && !allowUsers.includes(user) && allowUsers.some((u) => u.toLowerCase() === user.toLowerCase())
                ? [
                    {
                      path: `sidecar:identity.allowUsers[${i}]`,
                      problem: `${user} is allowed by the sidecar (case-insensitively) but the gateway lists it with other capitals`,
                      userSees: `${user} passes the sidecar, then is refused by the gateway (trusted_proxy_user_not_allowed)`,
                      fix: 'spell the address the same way in both allow lists',
                    },
                  ]
                : [],
            );
      return [...capitals, ...spelledOtherwise];
    },
  },
  {
    code: 'device_auto_approve_off',
    severity: 'error',
    check: ({ at }) => {
      if (at(`${TP}.deviceAutoApprove.enabled`) === true) return none;
      return [
        {
          path: `openclaw:${TP}.deviceAutoApprove.enabled`,
          problem: 'new browser devices of SSO users are not approved automatically',
          userSees: 'on first visit the Control UI closes with "1008: pairing required: device is not approved yet"',
          fix: `set ${TP}.deviceAutoApprove to { enabled: true, scopes: [operator.read, operator.write, operator.approvals, operator.questions] }`,
        },
      ];
    },
  },
  {
    code: 'auto_approve_cidrs_for_browsers',
    severity: 'warning',
    check: ({ at, strings }) => {
      if (at(`${TP}.deviceAutoApprove.enabled`) === true || (strings('gateway.nodes.pairing.autoApproveCidrs') ?? []).length === 0) return none;
      return [
        {
          path: 'openclaw:gateway.nodes.pairing.autoApproveCidrs',
          problem: 'autoApproveCidrs only approves non-browser node clients (and none behind a loopback proxy); it never approves the Control UI',
          userSees: 'the Control UI still says "pairing required" from those networks',
          fix: `use ${TP}.deviceAutoApprove for browsers`,
        },
      ];
    },
  },
  {
    code: 'device_auto_approve_admin',
    severity: 'error',
    check: ({ strings }) => {
      if (!(strings(`${TP}.deviceAutoApprove.scopes`) ?? []).includes(ADMIN_SCOPE)) return none;
      return [
        {
          path: `openclaw:${TP}.deviceAutoApprove.scopes`,
          problem: `${ADMIN_SCOPE} is among the scopes granted to new devices automatically`,
          userSees: 'nothing; but every SSO user can get a full-admin device without anyone approving it',
          fix: `remove ${ADMIN_SCOPE}; grant admin through the sidecar's gateway.scopes.byGroup and an approved device`,
        },
      ];
    },
  },
  {
    code: 'allowed_origins_mismatch',
    severity: 'error',
    check: ({ sidecar, strings, publicOrigin }) => {
      const expected = publicOrigin !== undefined ? [publicOrigin] : sidecar.listen.allowedOrigins;
      const origins = strings('gateway.controlUi.allowedOrigins') ?? [];
      const listed = new Set(origins.map((o) => originOf(o) ?? o));
      const notListed = expected.filter((o) => !listed.has(originOf(o) ?? o));
      if (origins.length > 0 && notListed.length === 0) return none;
      return [
        {
          path: 'openclaw:gateway.controlUi.allowedOrigins',
          problem:
            origins.length === 0
              ? 'no Control UI origin is allowed'
              : `the public origin ${notListed.map((o) => originOf(o) ?? o).join(', ')} is not in allowedOrigins`,
          userSees: 'the Control UI loads, then its WebSocket closes with "1008: origin not allowed"',
          fix: `set gateway.controlUi.allowedOrigins to ["${originOf(expected[0] ?? '') ?? 'https://<public host>'}"]`,
        },
      ];
    },
  },
  {
    code: 'sidecar_origin_mismatch',
    severity: 'error',
    check: ({ sidecar, publicOrigin }) => {
      const { allowedOrigins } = sidecar.listen;
      if (publicOrigin === undefined || allowedOrigins.length === 0 || allowedOrigins.some((o) => originOf(o) === originOf(publicOrigin))) return none;
      return [
        {
          path: 'sidecar:listen.allowedOrigins',
          problem: `the sidecar's allowedOrigins do not include the public origin ${originOf(publicOrigin) ?? publicOrigin}`,
          userSees: 'the Control UI loads, then the sidecar refuses its WebSocket: 403 origin_not_allowed',
          fix: "add the public origin to the sidecar's listen.allowedOrigins",
        },
      ];
    },
  },
  // Scopes: without a policy the gateway treats every HTTP API caller as admin.
  {
    code: 'scopes_policy_missing',
    severity: 'error',
    check: ({ sidecar }) => {
      const { scopesHeader } = sidecar.gateway;
      if (scopesHeader === SCOPES_HEADER) return none;
      return [
        {
          path: 'sidecar:gateway.scopesHeader',
          problem: scopesHeader
            ? `the sidecar sends scopes in ${scopesHeader}, but OpenClaw reads ${SCOPES_HEADER}`
            : `the sidecar sets no ${SCOPES_HEADER} and does not strip a client's own`,
          userSees: `nothing; but every SSO user's HTTP API calls run with ${ADMIN_SCOPE} (OpenClaw's default when the header is absent), or with whatever scopes the client declares`,
          fix: `set the sidecar's gateway.scopesHeader to ${SCOPES_HEADER} with gateway.scopes.default and byGroup`,
        },
      ];
    },
  },
  {
    code: 'scopes_default_admin',
    severity: 'warning',
    check: ({ sidecar }) => {
      if (sidecar.gateway.scopesHeader !== SCOPES_HEADER || !sidecar.gateway.scopes.default.includes(ADMIN_SCOPE)) return none;
      return [
        {
          path: 'sidecar:gateway.scopes.default',
          problem: `every user whose groups map to nothing gets ${ADMIN_SCOPE}`,
          userSees: 'nothing; but every SSO user is a gateway admin',
          fix: `grant ${ADMIN_SCOPE} only through gateway.scopes.byGroup`,
        },
      ];
    },
  },
  {
    code: 'scopes_policy_empty',
    severity: 'warning',
    check: ({ sidecar }) => {
      const { scopesHeader, scopes } = sidecar.gateway;
      if (scopesHeader !== SCOPES_HEADER || [scopes.default, ...Object.values(scopes.byGroup)].flat().length > 0) return none;
      return [
        {
          path: 'sidecar:gateway.scopes',
          problem: 'the scope policy grants nothing to anyone',
          userSees: 'the Control UI connects with no scopes and every action fails for lack of a scope',
          fix: 'set gateway.scopes.default (for example [operator.read, operator.write]) or byGroup',
        },
      ];
    },
  },
  {
    code: 'machine_route_over_ui_or_api',
    severity: 'error',
    check: ({ sidecar, at }) => {
      const base = normaliseBasePath(at('gateway.controlUi.basePath'));
      return sidecar.routes.flatMap((route, i) => {
        if (route.mode !== 'machine') return [];
        const covered = [base, ...GATEWAY_API_PATHS].filter((p) => overlaps(route, p, p === base));
        if (covered.length === 0) return [];
        return [
          {
            path: `sidecar:routes.${i}`,
            problem: `machine route ${route.name} (${route.path}) covers ${covered.join(', ')}: the Control UI or the gateway's API`,
            userSees: 'nothing; but anyone who reaches the ingress calls those paths with no SSO identity, stopped only by whatever the gateway itself asks',
            fix: 'make machine routes of the webhook and callback paths only (hooks.path, a channel callback), exact where you can',
          },
        ];
      });
    },
  },
  {
    code: 'hooks_without_machine_route',
    severity: 'warning',
    check: ({ sidecar, at }) => {
      if (at('hooks.enabled') !== true) return none;
      const path = normaliseBasePath(at('hooks.path') ?? '/hooks');
      const routed = matchRoute('POST', `${path}/wake`, sidecar.routes);
      if (routed?.route.mode === 'machine' && routed.methodAllowed) return none;
      return [
        {
          path: 'sidecar:routes',
          problem: `the gateway's webhooks are on (hooks.path ${path}) and no machine route of the sidecar takes POST ${path}/…`,
          userSees: 'every webhook gets 401 identity_missing from the sidecar (or the ingress sends it to sign in)',
          fix: `add a machine route: { name: hooks, path: ${path}, methods: [POST], mode: machine } (docs/openclaw.md, "Webhooks, channel callbacks and the CLI")`,
        },
      ];
    },
  },
];

/**
 * The gateway's API under its HTTP port (OpenClaw 2026.9: the OpenAI-compatible endpoints,
 * tool invocation, sessions, its own internal paths): never a machine route's.
 */
const GATEWAY_API_PATHS = ['/v1', '/tools', '/api', '/sessions', '/__openclaw__'];

/** As OpenClaw reads a base path: a leading slash, no trailing one; "/" for none. */
function normaliseBasePath(value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : '';
  const path = `/${text.replace(/^\/+|\/+$/g, '')}`;
  return path;
}

/** A route covers `path`, or (for a prefix, unless `exactOnly`) anything under it. */
function overlaps(route: Config['routes'][number], path: string, exactOnly: boolean): boolean {
  const under = (inner: string, outer: string) => outer === '/' || inner === outer || inner.startsWith(`${outer}/`);
  if (route.match === 'exact') return exactOnly ? route.path === path : under(route.path, path);
  return under(path, route.path) || (!exactOnly && under(route.path, path));
}
