// A throw-away CA and a server certificate for 127.0.0.1 (openssl), for the HTTPS tests; and
// an RSA key with a self-signed certificate for the registry token server.
import {execFileSync} from 'node:child_process'
import {join} from 'node:path'

export interface TestTls {
  ca: string
  cert: string
  key: string
}

const openssl = (args: string[], cwd: string): void => {
  execFileSync('openssl', args, {cwd, stdio: 'ignore'})
}

export function makeTls(dir: string): TestTls {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=cfsboot test CA',
    ],
    dir,
  )
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
      '-subj',
      '/CN=127.0.0.1',
    ],
    dir,
  )
  execFileSync(
    'sh',
    ['-c', 'printf "subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n" > ext.cnf'],
    {cwd: dir},
  )
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      'server.pem',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
    ],
    dir,
  )
  return {ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key')}
}

/** RSA key + self-signed certificate for signing registry tokens (the registry's rootcertbundle). */
export function makeTokenKey(dir: string): {key: string; cert: string} {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'token.key',
      '-out',
      'token.pem',
      '-days',
      '2',
      '-subj',
      '/CN=cfsboot test token issuer',
    ],
    dir,
  )
  return {key: join(dir, 'token.key'), cert: join(dir, 'token.pem')}
}
