// A small demo gateway for `make run`: it verifies each request's assertion with the
// exported verifier and answers with the identity it verified.
import http from 'node:http';
import { assertionMiddleware, keysFromDir, ReplayCache, type VerifiedAssertion } from '../assertion/verify.js';

const [keysDir = '.run/keys', port = '18789'] = process.argv.slice(2);
const verify = assertionMiddleware({ keys: keysFromDir(keysDir), replayCache: new ReplayCache() });

http
  .createServer((req, res) => {
    verify(req, res, () => {
      const claims = (req as http.IncomingMessage & { assertion: VerifiedAssertion }).assertion;
      const body = {
        gateway: 'demo',
        verified: { user: claims.sub, email: claims.email, groups: claims.groups, client: claims.cip, method: claims.htm, uri: claims.htu, kid: claims.kid },
        plainUserHeader: req.headers['x-forwarded-user'] ?? null,
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
    });
  })
  .listen(Number(port), '127.0.0.1', () => {
    process.stdout.write(`demo gateway on http://127.0.0.1:${port}, verifying with keys in ${keysDir}\n`);
  });
