// The route matcher: a machine route only for a path that reads one way, exactly as the
// gateway routes it (WHATWG URL parsing, as OpenClaw does); a deny route on any reading.
// And what it reads is what Node's HTTP server hands over, byte for byte.
import fc from 'fast-check';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawRequest, statusOf } from '../../support/raw-client.js';
import { matchRoute, possibleReadings, unambiguousPath, type Route } from '../../../src/routes/match.js';

const hooks: Route = { name: 'hooks', path: '/hooks', match: 'prefix', methods: ['POST'], mode: 'machine' };
const admin: Route = { name: 'admin', path: '/admin', match: 'prefix', methods: [], mode: 'deny' };
const health: Route = { name: 'health', path: '/healthz', match: 'exact', methods: [], mode: 'machine' };
const ROUTES = [admin, hooks, health];
const GATEWAY = 'http://localhost';

/** The path the gateway routes on. */
const gatewayPath = (target: string) => new URL(target, GATEWAY).pathname;

describe('a machine route: whole segments, exactly as the gateway reads the path', () => {
  test.each([
    ['/hooks', 'hooks'],
    ['/hooks/wake', 'hooks'],
    ['/hooks/agent?x=1', 'hooks'],
    ['/healthz', 'health'],
  ])('%s is on %s', (target, name) => {
    expect(matchRoute('POST', target, ROUTES)?.route.name).toBe(name);
  });

  test.each([
    '/hooksx',
    '/hooks/',
    '/healthz/x',
    '//hooks/wake',
    '/x/../hooks/wake',
    '/hooks/./wake',
    '/hooks/%2e%2e/admin',
    '/hooks%2fwake',
    '/%68ooks/wake',
    '/hooks\\wake',
    '/hooks;x/wake',
    '/hooks./wake',
    '/hooks/wake.',
    '/HOOKS/wake',
    'http://evil/hooks/wake',
    '*',
  ])('%s is on no machine route (an SSO identity is needed)', (target) => {
    const on = matchRoute('POST', target, ROUTES);
    expect(on === undefined || on.route.mode === 'deny').toBe(true);
  });

  test('another method is on the route, and not allowed there', () => {
    expect(matchRoute('GET', '/hooks/wake', ROUTES)).toMatchObject({ route: hooks, methodAllowed: false });
  });

  test('the first route that matches decides', () => {
    const sso: Route = { name: 'hook-admin', path: '/hooks/admin', match: 'prefix', methods: [], mode: 'sso' };
    expect(matchRoute('POST', '/hooks/admin/x', [sso, hooks])?.route).toBe(sso);
    expect(matchRoute('POST', '/hooks/admin/x', [hooks, sso])?.route).toBe(hooks);
  });
});

describe('a deny route: on every reading that could reach it', () => {
  test.each([
    '/admin',
    '/admin/x',
    '/ADMIN',
    '/x/../admin',
    '/%61dmin',
    '/%2561dmin',
    '//admin',
    '/admin.',
    '/admin;x',
    '/x\\..\\admin',
    '/hooks/%2e%2e/admin',
  ])('%s is denied', (target) => {
    expect(matchRoute('GET', target, ROUTES)?.route).toBe(admin);
  });
  test('a neighbour is not', () => {
    expect(matchRoute('GET', '/administrator', ROUTES)).toBeUndefined();
  });
});

// Paths built from the pieces that make paths read two ways.
// The last ones are plain but for a character a URL parser encodes (the path percent-encode set) or keeps.
const piece = fc.constantFrom(
  'hooks',
  'wake',
  'admin',
  'HOOKS',
  '.',
  '..',
  '%2e',
  '%2E',
  '%2f',
  '%5c',
  '%25',
  '%68',
  '',
  ';x',
  'a.',
  '\\',
  'x',
  '.a',
  'a.b',
  "a'b",
  'a|b',
  'a^b',
  'a{b',
  'a"b',
  'a`b',
  'a<b',
  '@:=',
);
const target = fc
  .tuple(fc.array(piece, { minLength: 1, maxLength: 6 }), fc.constantFrom('', '?q=1', '?a/../b'))
  .map(([segments, query]) => `/${segments.join('/')}${query}`);

test('property: a request on a machine route is one the gateway routes to the same path, under that route', () => {
  fc.assert(
    fc.property(target, (t) => {
      const on = matchRoute('POST', t, ROUTES);
      if (on?.route.mode !== 'machine') return;
      const path = t.split('?')[0]!;
      // The gateway reads the same path, and nothing in it decodes to anything else.
      expect(gatewayPath(t)).toBe(path);
      expect(decodeURIComponent(path)).toBe(path);
      expect(path === on.route.path || (on.route.match === 'prefix' && path.startsWith(`${on.route.path}/`))).toBe(true);
    }),
    { numRuns: 5000 },
  );
});

test('property: whatever the gateway would route under a denied path is denied', () => {
  fc.assert(
    fc.property(target, (t) => {
      // A target the gateway cannot parse it cannot route either.
      if (!URL.canParse(t, GATEWAY)) return;
      const routed = gatewayPath(t);
      const reaches = (p: string) => p.toLowerCase() === '/admin' || p.toLowerCase().startsWith('/admin/');
      if (reaches(routed) || reaches(decodeURIComponent(routed.replace(/%(?![0-9a-f]{2})/gi, '%25')))) {
        expect(matchRoute('GET', t, ROUTES)?.route).toBe(admin);
      }
    }),
    { numRuns: 5000 },
  );
});

test('property: an unambiguous path is its own WHATWG reading and among its own possible readings', () => {
  fc.assert(
    fc.property(target, (t) => {
      const path = unambiguousPath(t);
      if (path === undefined) return;
      expect(gatewayPath(t)).toBe(path);
      expect(possibleReadings(t)).toContain(path);
    }),
    { numRuns: 5000 },
  );
});

test("property: the matcher reads what Node's HTTP server hands over: a target it accepts arrives as req.url unchanged", async () => {
  const seen: string[] = [];
  let accepted = 0;
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    await fc.assert(
      fc.asyncProperty(target, async (t) => {
        const before = seen.length;
        const reply = await rawRequest(port, `POST ${t} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        if (statusOf(reply) !== 200) return;
        accepted++;
        expect(seen.slice(before)).toEqual([t]);
        expect(matchRoute('POST', seen.at(-1)!, ROUTES)).toEqual(matchRoute('POST', t, ROUTES));
      }),
      { numRuns: 300 },
    );
    // Node accepts most of them: the property was checked, not skipped.
    expect(accepted).toBeGreaterThan(150);
  } finally {
    server.close();
  }
});
