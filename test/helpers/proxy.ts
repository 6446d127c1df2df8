// A forward proxy on 127.0.0.1 for the proxy-from-environment test: CONNECT tunnels and
// absolute-URI requests, to 127.0.0.1 only; it counts what went through it.
import {createServer, request as httpRequest} from 'node:http'
import {connect, Socket} from 'node:net'

export interface Proxy {
  url: string
  seen: string[]
  stop(): Promise<void>
}

export async function startProxy(): Promise<Proxy> {
  const seen: string[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    const target = new URL(req.url ?? '')
    seen.push(`${req.method} ${req.url}`)
    if (target.hostname !== '127.0.0.1') {
      res.writeHead(403).end()
      return
    }
    const up = httpRequest(
      {
        host: '127.0.0.1',
        port: target.port,
        path: target.pathname + target.search,
        method: req.method,
        headers: req.headers,
      },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers)
        r.pipe(res)
      },
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  server.on('connect', (req, client: Socket, head: Buffer) => {
    seen.push(`CONNECT ${req.url}`)
    const [host, port] = (req.url ?? '').split(':')
    if (host !== '127.0.0.1') {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n')
      return
    }
    const up = connect(Number(port), '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      up.write(head)
      up.pipe(client)
      client.pipe(up)
    })
    sockets.add(up).add(client)
    up.on('error', () => client.destroy())
    client.on('error', () => up.destroy())
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as {port: number}).port}`,
    seen,
    stop: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy()
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}
