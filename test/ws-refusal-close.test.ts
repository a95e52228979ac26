// A socket refused with `?refusal=close` is closed at once (routes/ws-refusal.ts):
// its TCP connection ends right behind the close frame, and the server lets the descriptor go without
// waiting for the client's close frame. Before, a client that never answered held it outside every
// cap for 2 s: 3,000 of them at MAX_CONNECTIONS=6 in the issue. The client still reads the code and
// the reason.
import { connect as netConnect } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { connect, startServer } from './helpers.js'

const UPGRADE = 'GET /ws?refusal=close HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

/** The close frame (code, reason) at the end of `bytes`, after the 101 answer; undefined until it has all arrived. */
function closeFrame (bytes: Buffer): { code: number, reason: string } | undefined {
  const headEnd = bytes.indexOf('\r\n\r\n')
  if (headEnd < 0) return undefined
  const frame = bytes.subarray(headEnd + 4)
  if (frame.length < 2 || frame.length < 2 + (frame[1] & 0x7f)) return undefined
  if (frame[0] !== 0x88) throw new Error(`not a close frame: ${frame.toString('hex')}`)
  const payload = frame.subarray(2, 2 + (frame[1] & 0x7f))
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString() }
}

t.test('a refused socket that never answers the close frame is closed by the server at once', async t => {
  // Per address: the websocket, fetch's kept-alive connection and one refused socket fit; a refused
  // socket still counted after its refusal would make the next ones 4429.
  const server = await startServer(t, { maxConnections: 1, maxConnectionsPerIp: 4 })
  await connect(t, server.wsUrl)
  const { port } = new URL(server.url)

  for (let attempt = 0; attempt < 5; attempt++) {
    // A client that reads, and never sends its close frame nor closes.
    const socket = netConnect(Number(port), '127.0.0.1', () => socket.write(UPGRADE))
    t.teardown(() => socket.destroy())
    let bytes = Buffer.alloc(0)
    let ended = false
    socket.on('end', () => { ended = true })
    const refusal = await new Promise<{ code: number, reason: string }>((resolve, reject) => {
      socket.on('data', chunk => {
        bytes = Buffer.concat([bytes, chunk])
        const frame = closeFrame(bytes)
        if (frame !== undefined) resolve(frame)
      })
      socket.on('error', reject)
    })
    t.match(bytes.toString('latin1'), /^HTTP\/1\.1 101 /, 'the upgrade completed')
    t.same(refusal, { code: 4503, reason: 'server is at MAX_CONNECTIONS' }, 'the close frame carries 4503 and the reason: the earlier refused sockets, still open on this side, count no more')
    // A whole HTTP round trip on another connection: the server's end of the refused stream, sent
    // behind the close frame, has arrived by then. Before, it came 2 s later (REFUSED_SOCKET_GRACE_MS).
    t.equal((await fetch(`${server.url}/health/live`)).status, 200)
    t.ok(ended, `attempt ${attempt + 1}: the server ended the stream right after the close frame`)
  }
})

t.test('a ws client refused with refusal=close reads the code and reason, even one that sends at once', async t => {
  const server = await startServer(t, { maxConnections: 1 })
  await connect(t, server.wsUrl)
  for (let attempt = 0; attempt < 10; attempt++) {
    const ws = new WebSocket(`${server.wsUrl}?refusal=close`)
    ws.on('error', () => {})
    // Sent on 'open': it reaches a server that has already closed the socket.
    ws.on('open', () => ws.send(JSON.stringify({ type: 'ping', id: 1 })))
    const [code, reason] = await new Promise<[number, Buffer]>(resolve => ws.once('close', (...args) => resolve(args)))
    t.same({ code, reason: String(reason) }, { code: 4503, reason: 'server is at MAX_CONNECTIONS' }, `attempt ${attempt + 1}`)
  }
})
