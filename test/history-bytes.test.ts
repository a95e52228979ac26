// Issue 21, item 8: HISTORY_MEMORY_LIMIT and realtime_history_bytes count bytes, not characters. CJK
// history took 630 MB of heap under a 268 MB gauge: a CJK character is one character, three bytes in
// UTF-8 and two in V8's heap.
import t from 'tap'
import { EMPTY_EPOCH } from '../src/core/brokers/history.js'
import { MemoryBroker, stringBytes } from '../src/core/brokers/memory.js'
import { postJson, startServer } from './helpers.js'

/** 1,000 characters, 3,000 bytes in UTF-8. */
const CJK = '漢字'.repeat(500)
/** 1,000 characters, 1,000 bytes. */
const ASCII = 'x'.repeat(1000)

t.test('a string costs its UTF-8 bytes, or its size in the heap where that is larger', async t => {
  t.equal(stringBytes('abc'), 3, 'ASCII: a byte per character')
  t.equal(stringBytes('é'.repeat(10)), 20, 'Latin-1: UTF-8 is the larger')
  t.equal(stringBytes(CJK), 3000, 'CJK: three bytes each in UTF-8')
  t.equal(stringBytes(`${ASCII}中`), 2002, 'one character beyond Latin-1: the heap keeps all of it at two bytes each')
  t.equal(stringBytes('😀'), 4)
})

t.test('the in-memory broker counts the bytes of its frames', async t => {
  const broker = new MemoryBroker({ historySize: 10, historyTtl: 60 })
  t.teardown(() => broker.close())
  for (let i = 0; i < 5; i++) await broker.publish({ topic: 'bytes.a', data: ASCII })
  const ascii = broker.heldBytes
  for (let i = 0; i < 5; i++) await broker.publish({ topic: 'bytes.c', data: CJK })
  // The same frames but for their data: the difference is the data's, 2,000 bytes a publication.
  t.equal(broker.heldBytes - ascii, ascii + 5 * 2000, 'five CJK publications cost 10,000 bytes more than five ASCII ones')
})

t.test('eviction happens at the byte limit', async t => {
  const limit = 64 * 1024
  const broker = new MemoryBroker({ historySize: 100, historyTtl: 60, historyMemoryLimit: limit })
  t.teardown(() => broker.close())
  const topics = Array.from({ length: 40 }, (_, i) => `bytes.t${i}`)
  for (const topic of topics) {
    await broker.publish({ topic, data: CJK })
    t.ok(broker.heldBytes <= limit, `${topic}: ${broker.heldBytes} bytes held`)
  }
  // What stays is what fits in 64 KiB of UTF-8 frames: about 18 topics of 3.4 KB, not all 40 (40 KB
  // counted as characters).
  let frames = 0
  let kept = 0
  for (const topic of topics) {
    const { epoch, publications } = await broker.history(topic)
    if (epoch === EMPTY_EPOCH) continue
    kept++
    for (const publication of publications) frames += Buffer.byteLength(publication.frame)
  }
  t.ok(frames <= limit, `the retained frames are ${frames} bytes, within ${limit}`)
  t.ok(kept < 20 && kept > 10, `${kept} topics kept`)
  t.equal(broker.evictedTopics, topics.length - kept, 'the others were evicted')
  t.not((await broker.history('bytes.t39')).epoch, EMPTY_EPOCH, 'the newest is kept')
  t.equal((await broker.history('bytes.t0')).epoch, EMPTY_EPOCH, 'the oldest went first')
})

t.test('realtime_history_bytes reports bytes', async t => {
  const server = await startServer(t)
  for (let i = 0; i < 5; i++) t.equal((await postJson(`${server.url}/api/publish`, { topic: 'bytes.m', data: CJK })).status, 200)
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const gauge = Number(/^realtime_history_bytes (\d+)$/m.exec(text)?.[1])
  t.ok(gauge >= 5 * Buffer.byteLength(CJK), `${gauge} bytes: at least the data's 15,000 bytes of UTF-8`)
})
