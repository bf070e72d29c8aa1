// Signing in as a browser would, without one: the protected URL, oauth2-proxy's redirect to
// the OpenID provider, the provider's login form (harness/oidc-provider.ts), and back
// through oauth2-proxy's callback, keeping each host's cookies. For suites and benchmarks
// that need real sessions in numbers a browser would make slow.
import http from 'node:http';
import https from 'node:https';

export interface SignInOptions {
  /** The protected URL a browser would open. */
  start: string;
  user: string;
  password: string;
  /** The CA the https hops are served under. */
  ca: Buffer | string;
  /** Where a URL's host is really served (test hosts); by default, where it names. */
  connectTo?: (url: URL) => string;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const MAX_HOPS = 12;

/** Returns the Cookie header of the session oauth2-proxy set for the start URL's host. */
export async function signIn(o: SignInOptions): Promise<string> {
  const agent = new https.Agent({ ca: o.ca, keepAlive: false });
  const jar = new Map<string, Map<string, string>>();
  const cookiesOf = (host: string) => jar.get(host) ?? jar.set(host, new Map()).get(host)!;
  const startHost = new URL(o.start).host;
  const session = () => [...cookiesOf(startHost)].filter(([name]) => name.startsWith('_oauth2_proxy') && !name.endsWith('_csrf'));
  let url = new URL(o.start);
  let form: string | undefined;
  try {
    // Cookie paths are ignored: sending a cookie to a path it was not set for is harmless here.
    for (let hop = 0; hop < MAX_HOPS; hop++) {
      const headers: Record<string, string> = { accept: 'text/html', cookie: [...cookiesOf(url.host)].map(([k, v]) => `${k}=${v}`).join('; ') };
      if (form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await send(url, form === undefined ? 'GET' : 'POST', headers, form, agent, o.connectTo?.(url));
      for (const line of res.headers['set-cookie'] ?? []) {
        const pair = line.split(';')[0]!;
        const eq = pair.indexOf('=');
        cookiesOf(url.host).set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
      }
      const location = res.headers['location'];
      if (form === undefined && res.status === 200 && /<form method="post"/.test(res.body)) {
        // The provider's login form: post the credentials to it.
        form = new URLSearchParams({ username: o.user, password: o.password }).toString();
        continue;
      }
      if (res.status < 300 || res.status > 399 || location === undefined) {
        throw new Error(`sign-in of ${o.user} stopped at ${url.href}: ${res.status} ${res.body.slice(0, 300)}`);
      }
      form = undefined;
      url = new URL(location, url);
      if (url.host === startHost && session().length > 0)
        return session()
          .map(([k, v]) => `${k}=${v}`)
          .join('; ');
    }
    throw new Error(`sign-in of ${o.user}: more than ${MAX_HOPS} redirects`);
  } finally {
    agent.destroy();
  }
}

function send(url: URL, method: string, headers: Record<string, string>, body: string | undefined, agent: https.Agent, address?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const options = {
      host: address ?? url.hostname,
      port: url.port || (secure ? 443 : 80),
      method,
      path: url.pathname + url.search,
      headers: { host: url.host, ...headers },
    };
    const req = secure ? https.request({ ...options, servername: url.hostname, agent }) : http.request(options);
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${url.href} within 10 s`)));
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
