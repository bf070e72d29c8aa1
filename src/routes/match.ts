// Which configured route a request is on: the one matcher the decision (inline and
// forward-auth alike) and the guard use. A machine route lets a request through without an
// SSO identity, so a request may take one only when its path reads one way: exactly as the
// gateway will route it (OpenClaw routes on `new URL(req.url, base).pathname`), with
// nothing a later reader could decode or normalise into another path. Anything else
// (`..`, `%2e`, `%2f`, `//`, `\`, `;`, a trailing dot, any percent-escape) never matches
// a machine or sso route and falls to the default, an SSO identity. A deny route is matched
// the other way round: on every reading of the path that could reach it.

/** How a route's requests pass: with an SSO identity, as a machine (the gateway's own credentials), or not at all. */
export type RouteMode = 'sso' | 'machine' | 'deny';

export interface Route {
  readonly name: string;
  /** An absolute path with no trailing slash (`/` only as an exact route). */
  readonly path: string;
  /** `prefix`: the path and everything under it, by whole segments. */
  readonly match: 'exact' | 'prefix';
  /** Methods the route takes, upper-case; empty: any. */
  readonly methods: readonly string[];
  readonly mode: RouteMode;
}

export interface RouteMatch<R extends Route> {
  readonly route: R;
  /** The request's method is one the route takes. */
  readonly methodAllowed: boolean;
}

const BASE = 'http://gateway.invalid';
/**
 * A path made only of non-empty segments, none ending in a dot, of characters no URL parser
 * encodes, decodes or treats as a separator: it reads one way, and its readings are itself
 * and its lower case. Nearly every request's path is one, so the full checks below (WHATWG
 * parsing, decoding) run only for the rest.
 */
const PLAIN = /^(?:\/[A-Za-z0-9\-._~!$&'()*+,=:@|]*[A-Za-z0-9\-_~!$&'()*+,=:@|])+$/;

function pathOf(target: string): string {
  const query = target.indexOf('?');
  return query < 0 ? target : target.slice(0, query);
}

/**
 * The request target's path when it reads one way, else undefined: origin-form, visible
 * ASCII, no percent-escapes, backslashes or semicolons, no empty, `.` or `..` segment and
 * no segment ending in a dot, and the same path after WHATWG URL parsing.
 */
export function unambiguousPath(target: string): string | undefined {
  const path = pathOf(target);
  if (path === '/' || PLAIN.test(path)) return path;
  if (path[0] !== '/' || !/^[\x21-\x7e]+$/.test(path) || /[%\\;#]/.test(path)) return undefined;
  const segments = path.slice(1).split('/');
  // "/" alone is the one path whose only segment is empty.
  if (path !== '/' && segments.some((s) => s === '' || s.endsWith('.'))) return undefined;
  if (!URL.canParse(path, BASE) || new URL(path, BASE).pathname !== path) return undefined;
  return path;
}

/**
 * Every path the gateway, or something between it and its handlers, could take the target
 * for: WHATWG's reading, then decoded, with empty segments and trailing dots dropped and
 * `;` parameters cut, each also lower-cased. A deny route matching any of them denies.
 */
export function possibleReadings(target: string): string[] {
  const raw = pathOf(target);
  if (raw === '/' || PLAIN.test(raw)) return raw === raw.toLowerCase() ? [raw] : [raw, raw.toLowerCase()];
  const readings = new Set<string>();
  const add = (p: string) => {
    readings.add(p);
    readings.add(p.toLowerCase());
  };
  add(raw);
  const whatwg = URL.canParse(raw, BASE) ? new URL(raw, BASE).pathname : raw;
  for (const p of [raw, whatwg]) {
    add(p);
    const decoded = decodeRepeatedly(p);
    add(decoded);
    add(normalise(decoded));
  }
  return [...readings];
}

/** The first route the request is on, in the configured order, or undefined (the default: SSO). */
export function matchRoute<R extends Route>(method: string, target: string, routes: readonly R[]): RouteMatch<R> | undefined {
  if (routes.length === 0) return undefined;
  const path = unambiguousPath(target);
  let readings: string[] | undefined;
  for (const route of routes) {
    const on =
      route.mode === 'deny' ? (readings ??= possibleReadings(target)).some((p) => covers(route, p, true)) : path !== undefined && covers(route, path, false);
    if (on) return { route, methodAllowed: route.methods.length === 0 || route.methods.includes(method) };
  }
  return undefined;
}

function covers(route: Route, path: string, anyCase: boolean): boolean {
  const base = anyCase ? route.path.toLowerCase() : route.path;
  const p = anyCase ? path.toLowerCase() : path;
  if (route.match === 'exact') return p === base;
  return base === '/' || p === base || p.startsWith(`${base}/`);
}

/** Percent-decoding until nothing changes (a double-encoded `%252e` is a dot too); bytes that are not UTF-8 stay encoded. */
function decodeRepeatedly(path: string): string {
  let current = path;
  for (let i = 0; i < 4; i++) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      next = current.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
    if (next === current) break;
    current = next;
  }
  return current;
}

/** Backslashes as slashes, `;` parameters cut, empty, `.` and `..` segments resolved, trailing dots dropped. */
function normalise(path: string): string {
  const out: string[] = [];
  for (let segment of path.replaceAll('\\', '/').split('/')) {
    segment = segment.split(';')[0]!.replace(/\.+$/, (dots) => (dots === segment ? dots : ''));
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return `/${out.join('/')}`;
}
