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

const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const NEW_P256_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A CA of the test's own in `dir` (ca.crt, ca.key), valid two days. */
export function makeCa(dir: string, commonName: string): string {
  const f = (name: string) => join(dir, name);
  ssl(
    'req',
    '-x509',
    ...NEW_P256_KEY,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  return f('ca.crt');
}

/**
 * A certificate (NAME.crt, NAME.key) signed by the CA makeCa left in `dir`: `subject` as
 * openssl writes it (`/CN=traefik/O=ingress`), `sans` as `DNS:…`, `IP:…`, `URI:spiffe://…`.
 */
export function signCertificate(
  dir: string,
  name: string,
  subject: string,
  sans: readonly string[],
  usage: 'serverAuth' | 'clientAuth',
): { certFile: string; keyFile: string } {
  const f = (file: string) => join(dir, file);
  ssl('req', ...NEW_P256_KEY, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject);
  writeFileSync(f(`${name}.ext`), `${sans.length > 0 ? `subjectAltName=${sans.join(',')}\n` : ''}extendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
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

export function makeTestCa(dir: string, names: readonly string[]): TestCa {
  const caFile = makeCa(dir, 'trusted-proxy-sidecar test CA');
  const { certFile, keyFile } = signCertificate(
    dir,
    'server',
    `/CN=${names[0]}`,
    names.map((n) => `DNS:${n}`),
    'serverAuth',
  );
  const spki = new X509Certificate(readFileSync(certFile)).publicKey.export({ type: 'spki', format: 'der' });
  return { caFile, certFile, keyFile, serverSpki: createHash('sha256').update(spki).digest('base64') };
}

/** A client certificate signed by the CA that makeTestCa left in `dir`. */
export function makeClientCert(dir: string, name: string, subject: string, sans: readonly string[]): { certFile: string; keyFile: string } {
  return signCertificate(dir, name, subject, sans, 'clientAuth');
}
