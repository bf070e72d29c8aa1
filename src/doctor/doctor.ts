// Checks an OpenClaw gateway config against the sidecar config in front of it and names
// every mismatch on the path from the SSO login to a working Control UI: what is wrong,
// what the user will see because of it, and the fix. Paths say which file: `openclaw:`
// for the gateway's config, `sidecar:` for the sidecar's.
import type { Config } from '../config/schema.js';
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

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at a dotted path, or undefined when any step is missing or not an object. */
function at(root: unknown, path: string): unknown {
  let value = root;
  for (const key of path.split('.')) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  return value;
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
}

const TP = 'gateway.auth.trustedProxy';

export function diagnose(sidecar: Config, gateway: unknown, options: { publicOrigin?: string } = {}): Finding[] {
  const findings: Finding[] = [];
  const add = (severity: Finding['severity'], code: string, path: string, problem: string, userSees: string, fix: string) =>
    findings.push({ severity, code, path, problem, userSees, fix });
  const error = (code: string, path: string, problem: string, userSees: string, fix: string) => add('error', code, path, problem, userSees, fix);
  const warning = (code: string, path: string, problem: string, userSees: string, fix: string) => add('warning', code, path, problem, userSees, fix);

  if (!isObject(gateway)) {
    error('gateway_config_invalid', 'openclaw:', 'the gateway config is not a JSON5 object', 'the gateway does not start', 'write the gateway config as a JSON5 object');
    return findings;
  }

  // Where and how the gateway listens.
  const mode = at(gateway, 'gateway.mode');
  if (mode !== 'local') {
    error(
      'gateway_mode_not_local',
      'openclaw:gateway.mode',
      `gateway.mode is ${JSON.stringify(mode)}, not "local"`,
      'the gateway does not start as a server, so the sidecar answers 502 upstream_unavailable',
      'set gateway.mode to "local"',
    );
  }
  const bind = at(gateway, 'gateway.bind') ?? 'loopback';
  if (bind !== 'loopback') {
    error(
      'bind_not_loopback',
      'openclaw:gateway.bind',
      `gateway.bind is ${JSON.stringify(bind)}: the gateway listens beyond the pod's loopback`,
      'nothing at first; but anyone who reaches the pod address on the gateway port can send identity headers around the sidecar and SSO',
      'set gateway.bind to "loopback" and reach the gateway only through the sidecar',
    );
  }
  const sources = sidecarSourceAddresses(sidecar);
  if (!sources) {
    error(
      'sidecar_upstream_not_loopback',
      'sidecar:upstream.url',
      `the sidecar forwards to ${sidecar.upstream.url}, not to the pod's loopback`,
      'with the gateway bound to loopback, 502 upstream_unavailable; otherwise the gateway is reachable around the sidecar',
      'set upstream.url to http://127.0.0.1:<gateway port>',
    );
  }
  const port = at(gateway, 'gateway.port') ?? DEFAULT_GATEWAY_PORT;
  if (port !== upstreamPort(sidecar)) {
    error(
      'port_mismatch',
      'openclaw:gateway.port',
      `the gateway listens on port ${JSON.stringify(port)} but the sidecar forwards to ${sidecar.upstream.url}`,
      'every request ends in 502 upstream_unavailable from the sidecar',
      `set gateway.port to ${upstreamPort(sidecar)} (or the sidecar's upstream.url to the gateway's port)`,
    );
  }

  // Trusted-proxy auth, in the order the gateway evaluates it.
  const authMode = at(gateway, 'gateway.auth.mode');
  if (authMode !== 'trusted-proxy') {
    error(
      'auth_mode_not_trusted_proxy',
      'openclaw:gateway.auth.mode',
      `gateway.auth.mode is ${JSON.stringify(authMode)}, not "trusted-proxy"`,
      'the Control UI asks for a token or password after SSO; the identity the sidecar sends is ignored',
      'set gateway.auth.mode to "trusted-proxy"',
    );
  } else if (at(gateway, 'gateway.auth.token') !== undefined) {
    error(
      'auth_token_with_trusted_proxy',
      'openclaw:gateway.auth.token',
      'a shared token is configured together with trusted-proxy mode',
      'the gateway refuses to start, so the sidecar answers 502 upstream_unavailable',
      'remove gateway.auth.token (and OPENCLAW_GATEWAY_TOKEN)',
    );
  }

  const trustedProxies = strings(at(gateway, 'gateway.trustedProxies')) ?? [];
  const missing = (sources ?? []).filter((a) => !trustedProxies.some((e) => entryCovers(e, a)));
  if (missing.length > 0) {
    error(
      'trusted_proxies_missing_loopback',
      'openclaw:gateway.trustedProxies',
      `${missing.join(' and ')} (where the sidecar connects from) is not in gateway.trustedProxies`,
      trustedProxies.length === 0
        ? 'every request is refused: unauthorized (trusted_proxy_no_proxies_configured)'
        : 'every request is refused: unauthorized (trusted_proxy_untrusted_source)',
      'set gateway.trustedProxies to ["127.0.0.1", "::1"]',
    );
  }
  if (at(gateway, `${TP}.allowLoopback`) !== true) {
    error(
      'allow_loopback_off',
      `openclaw:${TP}.allowLoopback`,
      'the gateway refuses trusted-proxy requests from loopback, where the sidecar is',
      'every request is refused: unauthorized (trusted_proxy_loopback_source)',
      `set ${TP}.allowLoopback to true`,
    );
  }

  const sent = headersSidecarSends(sidecar);
  for (const [i, name] of (strings(at(gateway, `${TP}.requiredHeaders`)) ?? []).entries()) {
    if (!sent.has(name.trim().toLowerCase())) {
      error(
        'required_header_not_sent',
        `openclaw:${TP}.requiredHeaders[${i}]`,
        `the gateway requires header ${name}, which the sidecar does not send`,
        `every request is refused: unauthorized (trusted_proxy_missing_header_${name})`,
        `remove ${name} from requiredHeaders; require ${sidecar.assertion.header} and x-forwarded-proto instead`,
      );
    }
  }
  const required = (strings(at(gateway, `${TP}.requiredHeaders`)) ?? []).map((h) => h.trim().toLowerCase());
  if (!required.includes(sidecar.assertion.header)) {
    warning(
      'assertion_header_not_required',
      `openclaw:${TP}.requiredHeaders`,
      `the gateway does not require ${sidecar.assertion.header}, the header only the sidecar sets`,
      'nothing; but a request that did not pass the sidecar is not told apart by the gateway',
      `add ${sidecar.assertion.header} to requiredHeaders`,
    );
  }

  const userHeader = at(gateway, `${TP}.userHeader`);
  const gatewayUser = typeof userHeader === 'string' ? userHeader.trim().toLowerCase() : '';
  if (!sidecar.gateway.userHeader) {
    error(
      'sidecar_user_header_off',
      'sidecar:gateway.userHeader',
      'the sidecar sends the gateway no plain user header',
      'every request is refused: unauthorized (trusted_proxy_user_missing)',
      'set the sidecar\'s gateway.userHeader (for example x-forwarded-user) and the gateway\'s userHeader to the same name',
    );
  } else if (gatewayUser !== sidecar.gateway.userHeader) {
    const stripped = [sidecar.identity.userHeader, sidecar.identity.emailHeader, sidecar.identity.groupsHeader].includes(gatewayUser);
    error(
      'user_header_mismatch',
      `openclaw:${TP}.userHeader`,
      `the gateway reads the user from ${JSON.stringify(userHeader)} but the sidecar sends it in ${sidecar.gateway.userHeader}` +
        (stripped ? ` (${gatewayUser} is the SSO proxy's header, which the sidecar strips)` : ''),
      'every request is refused after SSO: unauthorized (trusted_proxy_user_missing)',
      `set ${TP}.userHeader to "${sidecar.gateway.userHeader}"`,
    );
  }

  const allowUsers = strings(at(gateway, `${TP}.allowUsers`)) ?? [];
  for (const [i, user] of allowUsers.entries()) {
    if (user.includes('@') && user !== user.toLowerCase()) {
      warning(
        'allow_users_case',
        `openclaw:${TP}.allowUsers[${i}]`,
        `${user} has capitals, but the gateway compares users exactly while email addresses are case-insensitive`,
        `${user.toLowerCase()} passes SSO and the sidecar, then is refused by the gateway (trusted_proxy_user_not_allowed)`,
        `write the address as the identity provider sends it, usually lower case (${user.toLowerCase()})`,
      );
    }
  }
  if (allowUsers.length > 0) {
    for (const [i, user] of sidecar.identity.allowUsers.entries()) {
      if (user.includes('@') && !allowUsers.includes(user) && allowUsers.some((u) => u.toLowerCase() === user.toLowerCase())) {
        warning(
          'allow_users_case',
          `sidecar:identity.allowUsers[${i}]`,
          `${user} is allowed by the sidecar (case-insensitively) but the gateway lists it with other capitals`,
          `${user} passes the sidecar, then is refused by the gateway (trusted_proxy_user_not_allowed)`,
          'spell the address the same way in both allow lists',
        );
      }
    }
  }

  // Devices and pairing.
  const autoApprove = at(gateway, `${TP}.deviceAutoApprove`);
  const autoApproveOn = at(autoApprove, 'enabled') === true;
  if (!autoApproveOn) {
    error(
      'device_auto_approve_off',
      `openclaw:${TP}.deviceAutoApprove.enabled`,
      'new browser devices of SSO users are not approved automatically',
      'on first visit the Control UI closes with "1008: pairing required: device is not approved yet"',
      `set ${TP}.deviceAutoApprove to { enabled: true, scopes: [operator.read, operator.write, operator.approvals, operator.questions] }`,
    );
    const cidrs = strings(at(gateway, 'gateway.nodes.pairing.autoApproveCidrs')) ?? [];
    if (cidrs.length > 0) {
      warning(
        'auto_approve_cidrs_for_browsers',
        'openclaw:gateway.nodes.pairing.autoApproveCidrs',
        'autoApproveCidrs only approves non-browser node clients (and none behind a loopback proxy); it never approves the Control UI',
        'the Control UI still says "pairing required" from those networks',
        `use ${TP}.deviceAutoApprove for browsers`,
      );
    }
  }
  if ((strings(at(autoApprove, 'scopes')) ?? []).includes(ADMIN_SCOPE)) {
    error(
      'device_auto_approve_admin',
      `openclaw:${TP}.deviceAutoApprove.scopes`,
      `${ADMIN_SCOPE} is among the scopes granted to new devices automatically`,
      'nothing; but every SSO user can get a full-admin device without anyone approving it',
      `remove ${ADMIN_SCOPE}; grant admin through the sidecar's gateway.scopes.byGroup and an approved device`,
    );
  }

  // Browser origins.
  const expected = options.publicOrigin !== undefined ? [options.publicOrigin] : sidecar.listen.allowedOrigins;
  const origins = strings(at(gateway, 'gateway.controlUi.allowedOrigins')) ?? [];
  const listed = new Set(origins.map((o) => originOf(o) ?? o));
  const notListed = expected.filter((o) => !listed.has(originOf(o) ?? o));
  if (origins.length === 0 || notListed.length > 0) {
    error(
      'allowed_origins_mismatch',
      'openclaw:gateway.controlUi.allowedOrigins',
      origins.length === 0
        ? 'no Control UI origin is allowed'
        : `the public origin ${notListed.map((o) => originOf(o) ?? o).join(', ')} is not in allowedOrigins`,
      'the Control UI loads, then its WebSocket closes with "1008: origin not allowed"',
      `set gateway.controlUi.allowedOrigins to ["${originOf(expected[0] ?? '') ?? 'https://<public host>'}"]`,
    );
  }
  if (options.publicOrigin !== undefined && sidecar.listen.allowedOrigins.length > 0) {
    const sidecarOrigins = new Set(sidecar.listen.allowedOrigins.map((o) => originOf(o)));
    if (!sidecarOrigins.has(originOf(options.publicOrigin))) {
      error(
        'sidecar_origin_mismatch',
        'sidecar:listen.allowedOrigins',
        `the sidecar's allowedOrigins do not include the public origin ${originOf(options.publicOrigin) ?? options.publicOrigin}`,
        'the Control UI loads, then the sidecar refuses its WebSocket: 403 origin_not_allowed',
        'add the public origin to the sidecar\'s listen.allowedOrigins',
      );
    }
  }

  // Scopes: without a policy the gateway treats every HTTP API caller as admin.
  const { scopesHeader, scopes } = sidecar.gateway;
  if (scopesHeader !== SCOPES_HEADER) {
    error(
      'scopes_policy_missing',
      'sidecar:gateway.scopesHeader',
      scopesHeader
        ? `the sidecar sends scopes in ${scopesHeader}, but OpenClaw reads ${SCOPES_HEADER}`
        : `the sidecar sets no ${SCOPES_HEADER} and does not strip a client's own`,
      `nothing; but every SSO user's HTTP API calls run with ${ADMIN_SCOPE} (OpenClaw's default when the header is absent), or with whatever scopes the client declares`,
      `set the sidecar's gateway.scopesHeader to ${SCOPES_HEADER} with gateway.scopes.default and byGroup`,
    );
  } else {
    const all = [scopes.default, ...Object.values(scopes.byGroup)].flat();
    if (scopes.default.includes(ADMIN_SCOPE)) {
      warning(
        'scopes_default_admin',
        'sidecar:gateway.scopes.default',
        `every user whose groups map to nothing gets ${ADMIN_SCOPE}`,
        'nothing; but every SSO user is a gateway admin',
        `grant ${ADMIN_SCOPE} only through gateway.scopes.byGroup`,
      );
    }
    if (all.length === 0) {
      warning(
        'scopes_policy_empty',
        'sidecar:gateway.scopes',
        'the scope policy grants nothing to anyone',
        'the Control UI connects with no scopes and every action fails for lack of a scope',
        'set gateway.scopes.default (for example [operator.read, operator.write]) or byGroup',
      );
    }
  }
  return findings;
}
