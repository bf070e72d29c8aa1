// The guard's settings. It runs inside the gateway's process as a preload, where there is
// no config file or command line of its own: it reads environment variables, validates
// them all at once, and refuses to start the gateway with every problem listed.
import * as z from '../config/zod.js';
import { ALGORITHMS } from '../config/schema.js';
import { headerName, optionalHeaderName } from '../config/header-name.js';
import { unambiguousPath, type Route } from '../routes/match.js';

const PREFIX = 'TRUSTED_PROXY_GUARD_';
const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

const portsRequired = 'is required: the gateway port(s) to guard, e.g. 18789';

const guardSchema = z
  .strictObject({
    // Only servers listening on these ports are guarded: a gateway may run other, internal ones.
    PORTS: z.pipe(
      z.pipe(z.string({ error: portsRequired }), z.transform(list)),
      z
        .array(
          z.pipe(
            z.pipe(z.string().check(z.regex(/^\d{1,5}$/, 'must be port numbers')), z.transform(Number)),
            z.number().check(z.int(), z.minimum(1), z.maximum(65535)),
          ),
        )
        .check(z.minLength(1, portsRequired)),
    ),
    KEYS_DIR: z._default(z.string(), ''),
    // The key folder's algorithm; a JWK Set's keys name their own (EdDSA, ES256).
    ALGORITHM: z._default(z.enum(ALGORITHMS), 'HS256'),
    JWKS: z._default(z.string(), ''),
    HEADER: z._default(headerName, 'x-trusted-proxy-assertion'),
    ISSUER: z._default(z.string().check(z.minLength(1)), 'trusted-proxy-sidecar'),
    AUDIENCE: z._default(z.string().check(z.minLength(1)), 'gateway'),
    // GET and HEAD of these exact paths pass unverified (probes); they must grant nothing.
    OPEN_PATHS: z._default(z.pipe(z.pipe(z.string(), z.transform(list)), z.array(z.string().check(z.regex(/^\/[^?#\s]*$/, 'must be absolute paths')))), []),
    // When set, this header (the identity the gateway reads) must equal the assertion's sub.
    USER_HEADER: optionalHeaderName,
    // The scopes the gateway reads: they must be the assertion's `scope`, and a request whose
    // assertion has none may not carry the header. '' turns the check off.
    SCOPES_HEADER: z._default(optionalHeaderName, 'x-openclaw-scopes'),
    // The sidecar's machine routes (its routes of mode machine, as JSON): an assertion that
    // names a route passes only on that route, as the same matcher reads the request.
    MACHINE_ROUTES: z._default(z.string(), '[]'),
    // Clients inside the pod that do not come through the sidecar (the OpenClaw CLI, cron):
    // a loopback request with no assertion, identity or forwarding header passes to the
    // gateway, which then asks for its own password (gateway.auth.password).
    LOCAL_DIRECT: z._default(z.enum(['true', 'false']), 'false'),
  })
  .check(
    z.superRefine((v, ctx) => {
      if ((v.KEYS_DIR === '') === (v.JWKS === '')) {
        ctx.addIssue({
          code: 'custom',
          path: ['KEYS_DIR'],
          message: `set exactly one of ${PREFIX}KEYS_DIR (the sidecar's key folder) and ${PREFIX}JWKS (its JWK Set file or URL)`,
        });
      }
    }),
  );

export interface GuardOptions {
  readonly ports: ReadonlySet<number>;
  readonly keysDir: string;
  readonly algorithm: (typeof ALGORITHMS)[number];
  readonly jwks: string;
  readonly header: string;
  readonly issuer: string;
  readonly audience: string;
  readonly openPaths: ReadonlySet<string>;
  readonly userHeader: string;
  readonly scopesHeader: string;
  readonly machineRoutes: readonly Route[];
  readonly localDirect: boolean;
}

const machineRoute = z.strictObject({
  name: z.string().check(z.minLength(1)),
  path: z.string().check(z.refine((p) => p === '/' || (unambiguousPath(p) === p && !p.endsWith('/')), 'must be an absolute path that reads one way')),
  match: z._default(z.enum(['exact', 'prefix']), 'prefix'),
  methods: z._default(z.array(z.string().check(z.regex(/^[A-Z]+$/, 'must be methods in upper case'))), []),
});

/** MACHINE_ROUTES read: the routes, or what is wrong with them. */
function machineRoutes(json: string): { routes: Route[] } | { problems: string[] } {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { problems: [`${PREFIX}MACHINE_ROUTES: must be JSON, a list of routes as the sidecar's config names them`] };
  }
  const parsed = z.array(machineRoute).safeParse(value);
  if (!parsed.success) return { problems: parsed.error.issues.map((i) => `${PREFIX}MACHINE_ROUTES[${i.path.join('].')}: ${i.message}`) };
  return { routes: parsed.data.map((r) => ({ ...r, mode: 'machine' as const })) };
}

export type GuardOptionsResult = { ok: true; options: GuardOptions } | { ok: false; problems: string[] };

/** The guard's options from the environment, or every problem with them. */
export function guardOptions(env: NodeJS.ProcessEnv): GuardOptionsResult {
  const raw = Object.fromEntries(
    Object.entries(env)
      .filter(([k]) => k.startsWith(PREFIX))
      .map(([k, v]) => [k.slice(PREFIX.length), v]),
  );
  const parsed = guardSchema.safeParse(raw);
  const routes = machineRoutes(typeof raw['MACHINE_ROUTES'] === 'string' ? raw['MACHINE_ROUTES'] : '[]');
  const problems = [
    ...(parsed.success ? [] : parsed.error.issues.map((i) => `${PREFIX}${String(i.path[0] ?? '')}: ${i.message}`.replace(`${PREFIX}: `, ''))),
    ...('problems' in routes ? routes.problems : []),
  ];
  if (!parsed.success || 'problems' in routes) return { ok: false, problems };
  const v = parsed.data;
  return {
    ok: true,
    options: {
      ports: new Set(v.PORTS),
      keysDir: v.KEYS_DIR,
      algorithm: v.ALGORITHM,
      jwks: v.JWKS,
      header: v.HEADER,
      issuer: v.ISSUER,
      audience: v.AUDIENCE,
      openPaths: new Set(v.OPEN_PATHS),
      userHeader: v.USER_HEADER,
      scopesHeader: v.SCOPES_HEADER,
      machineRoutes: routes.routes,
      localDirect: v.LOCAL_DIRECT === 'true',
    },
  };
}
