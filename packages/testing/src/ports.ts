import net from 'node:net'

const tried = new Set<number>()

/**
 * A free TCP port on 127.0.0.1 below 32768 (the ephemeral range starts there, so a port above
 * it could be taken by some outgoing connection before our server binds). Probes by binding;
 * never hands out the same port twice in one process.
 */
export async function freePort(low = 20000, high = 32000): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low))
    if (tried.has(port)) continue
    tried.add(port)
    if (await canBind(port)) return port
  }
  throw new Error(`no free port found in ${low}-${high}`)
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}
