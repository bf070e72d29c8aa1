// A certificate authority of the test's own, by openssl: one CA and one server certificate
// for the names the test serves. Peers are told to trust the CA (oauth2-proxy's
// --provider-ca-file, Node's `ca`); Chromium trusts it by its public key's digest
// (--ignore-certificate-errors-spki-list), so no other certificate passes.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** base64 SHA-256 of the server certificate's SubjectPublicKeyInfo, as Chromium's flag wants it. */
  serverSpki: string;
}

export function makeTestCa(dir: string, names: readonly string[]): TestCa {
  const f = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=trusted-proxy-sidecar test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  ssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', `/CN=${names[0]}`);
  writeFileSync(f('server.ext'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
  ssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.crt'),
    '-days',
    '2',
    '-extfile',
    f('server.ext'),
  );
  const spki = new X509Certificate(readFileSync(f('server.crt'))).publicKey.export({ type: 'spki', format: 'der' });
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key'), serverSpki: createHash('sha256').update(spki).digest('base64') };
}

/**
 * A client certificate signed by the CA that makeTestCa left in `dir`: `subject` as openssl
 * writes it (`/CN=traefik/O=ingress`), `sans` as `URI:spiffe://…`, `DNS:…`.
 */
export function makeClientCert(dir: string, name: string, subject: string, sans: readonly string[]): { certFile: string; keyFile: string } {
  const f = (file: string) => join(dir, file);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject);
  writeFileSync(f(`${name}.ext`), `${sans.length > 0 ? `subjectAltName=${sans.join(',')}\n` : ''}extendedKeyUsage=clientAuth\n`);
  ssl(
    'x509',
    '-req',
    '-in',
    f(`${name}.csr`),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f(`${name}.crt`),
    '-days',
    '2',
    '-extfile',
    f(`${name}.ext`),
  );
  return { certFile: f(`${name}.crt`), keyFile: f(`${name}.key`) };
}
