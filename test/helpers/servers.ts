// Real servers for the remote tests, on 127.0.0.1 only: Debian's nginx serving a directory and
// Debian's docker-registry (the distribution registry), each with a config in a temp dir and a
// port the kernel picked. Every wait here is bounded.
import {ChildProcess, spawn} from 'node:child_process'
import {closeSync, mkdirSync, openSync, readFileSync, writeFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'

export interface Server {
  port: number
  url: string
  stop(): Promise<void>
  /** What the server wrote on stderr (for failed-test messages). */
  log(): string
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as {port: number}).port
      s.close(() => resolve(port))
    })
  })
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited: ${log()}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer()
      s.once('error', () => resolve(true)) // in use: the server listens
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)))
    })
    if (ok) return
    await sleep(50)
  }
  throw new Error(`server did not listen on ${port}: ${log()}`)
}

function startProcess(
  cmd: string,
  args: string[],
  port: number,
  scheme: string,
  logFile: string,
): Promise<Server> {
  // Output to a file, not a pipe: a test blocked in a synchronous call must not stall the server.
  const fd = openSync(logFile, 'a')
  const child = spawn(cmd, args, {stdio: ['ignore', fd, fd]})
  closeSync(fd)
  const log = (): string => readFileSync(logFile, 'utf8').slice(-20000)
  return waitForPort(port, child, log).then(() => ({
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    log,
    async stop() {
      if (child.exitCode !== null) return
      const gone = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await Promise.race([gone, sleep(5000).then(() => child.kill('SIGKILL'))])
    },
  }))
}

/** nginx serving `root` on 127.0.0.1 (plain HTTP, or HTTPS with the given key and certificate). */
export async function startNginx(
  dir: string,
  root: string,
  opts: {tls?: {cert: string; key: string}; extra?: string} = {},
): Promise<Server> {
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  mkdirSync(join(dir, 'nginx-tmp'), {recursive: true})
  writeFileSync(
    conf,
    `daemon off;
worker_processes 1;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 256; }
http {
  log_format cfs '$request_method $uri $status $body_bytes_sent "$http_range"';
  access_log ${dir}/nginx-access.log cfs;
  client_body_temp_path ${dir}/nginx-tmp;
  proxy_temp_path ${dir}/nginx-tmp;
  fastcgi_temp_path ${dir}/nginx-tmp;
  uwsgi_temp_path ${dir}/nginx-tmp;
  scgi_temp_path ${dir}/nginx-tmp;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:${port}${opts.tls ? ' ssl' : ''};
    ${opts.tls ? `ssl_certificate ${opts.tls.cert}; ssl_certificate_key ${opts.tls.key};` : ''}
    root ${root};
    ${opts.extra ?? ''}
  }
}
`,
  )
  return startProcess(
    'nginx',
    ['-c', conf, '-p', dir, '-e', `${dir}/nginx-error.log`],
    port,
    opts.tls ? 'https' : 'http',
    join(dir, 'nginx-out.log'),
  )
}

export interface RegistryAuth {
  htpasswd?: string
  token?: {realm: string; service: string; issuer: string; rootCert: string}
}

/** Debian's docker-registry with filesystem storage under `dir`. */
export async function startRegistry(
  dir: string,
  opts: {auth?: RegistryAuth; tls?: {cert: string; key: string}} = {},
): Promise<Server> {
  const port = await freePort()
  mkdirSync(join(dir, 'registry-data'), {recursive: true})
  const auth = opts.auth?.htpasswd
    ? `auth:\n  htpasswd:\n    realm: cfsboot-test\n    path: ${opts.auth.htpasswd}\n`
    : opts.auth?.token
      ? `auth:\n  token:\n    realm: ${opts.auth.token.realm}\n    service: ${opts.auth.token.service}\n    issuer: ${opts.auth.token.issuer}\n    rootcertbundle: ${opts.auth.token.rootCert}\n`
      : ''
  const tls = opts.tls ? `  tls:\n    certificate: ${opts.tls.cert}\n    key: ${opts.tls.key}\n` : ''
  const conf = join(dir, 'registry.yml')
  writeFileSync(
    conf,
    `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${join(dir, 'registry-data')}
http:
  addr: 127.0.0.1:${port}
${tls}${auth}`,
  )
  return startProcess(
    'docker-registry',
    ['serve', conf],
    port,
    opts.tls ? 'https' : 'http',
    join(dir, 'registry.log'),
  )
}
