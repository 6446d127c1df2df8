// A small token server implementing the distribution spec's bearer flow for docker-registry's
// `auth: token`: GET /token?service=…&scope=repository:NAME:ACTIONS with Basic credentials →
// {"token": JWT}. The JWT is RS256-signed with a key whose self-signed certificate is the
// registry's rootcertbundle, and carries that certificate in its x5c header.
import {createPrivateKey, randomBytes, sign} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {createServer, IncomingMessage, ServerResponse} from 'node:http'

export interface TokenServer {
  url: string
  /** Requests seen, with the user they authenticated as (null: anonymous or wrong password). */
  requests: {scope: string; user: string | null}[]
  stop(): Promise<void>
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url')

export async function startTokenServer(opts: {
  key: string
  cert: string
  issuer: string
  service: string
  users: Record<string, string>
}): Promise<TokenServer> {
  const key = createPrivateKey(readFileSync(opts.key))
  const der = Buffer.from(
    readFileSync(opts.cert, 'utf8')
      .replace(/-----[^-]+-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  )
  const requests: TokenServer['requests'] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1')
    const scope = u.searchParams.get('scope') ?? ''
    let user: string | null = null
    const auth = req.headers.authorization ?? ''
    if (auth.startsWith('Basic ')) {
      const [name, pass] = Buffer.from(auth.slice(6), 'base64').toString().split(':')
      if (name && opts.users[name] === pass) user = name
    }
    requests.push({scope, user})
    if (!user) {
      res.writeHead(401, {'content-type': 'application/json'})
      res.end('{"errors":[{"code":"UNAUTHORIZED"}]}')
      return
    }
    const [, name, actions] = /^repository:([^:]+):(.+)$/.exec(scope) ?? []
    const now = Math.floor(Date.now() / 1000)
    const header = {typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')]}
    const claims = {
      iss: opts.issuer,
      sub: user,
      aud: opts.service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access: name ? [{type: 'repository', name, actions: actions!.split(',')}] : [],
    }
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
    const sig = sign('sha256', Buffer.from(input), key)
    res.writeHead(200, {'content-type': 'application/json'})
    res.end(JSON.stringify({token: `${input}.${b64url(sig)}`, expires_in: 300}))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as {port: number}).port
  return {
    url: `http://127.0.0.1:${port}/token`,
    requests,
    stop: () => new Promise((r) => server.close(() => r())),
  }
}
