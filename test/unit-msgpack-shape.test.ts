// The walk over a MessagePack frame's bytes before it is decoded (src/core/msgpack-shape.ts): every
// value with a JSON form passes, in each of MessagePack's encodings of it; what it refuses is refused
// without building anything.
import { encode, ExtData } from '@msgpack/msgpack'
import t from 'tap'
import { msgpackShapeProblem } from '../src/core/msgpack-shape.js'

const DEPTH = 257
/** The encoder's own depth limit is 100. */
const DEEP = { maxDepth: 1000 }

function nested (levels: number): unknown {
  let value: unknown = 1
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value }
  return value
}

t.test('every encoding of JSON values passes', async t => {
  const values: unknown[] = [
    0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1,
    0.5, -1.25, 1e300, null, true, false,
    '', 'a'.repeat(31), 'b'.repeat(32), 'c'.repeat(255), 'd'.repeat(256), 'e'.repeat(65535), 'f'.repeat(65536), 'é€😀',
    [], {}, Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 65536 }, () => 0),
    Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`k${i}`, i])), Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, [i]])),
    Object.fromEntries(Array.from({ length: 65536 }, (_, i) => [`k${i}`, null])),
    { type: 'publish', id: 'x', topic: 'a.b', data: { nested: [{ deep: [[[]]] }], s: 'x' } },
    nested(DEPTH - 1),
    nested(DEPTH)
  ]
  for (const value of values) {
    const bytes = encode(value, DEEP)
    t.equal(msgpackShapeProblem(bytes, DEPTH), undefined, `${JSON.stringify(value).slice(0, 40)} (${bytes.length} bytes)`)
  }
})

t.test('timestamps pass in all three forms; other extensions and binary values do not', async t => {
  for (const date of [new Date(0), new Date(1767225600123), new Date(-1), new Date(2 ** 40 * 1000)]) {
    const bytes = encode({ at: date })
    t.equal(msgpackShapeProblem(bytes, DEPTH), undefined, `timestamp ${date.toISOString()} (${bytes.length} bytes)`)
  }
  t.match(msgpackShapeProblem(encode({ b: new Uint8Array(300) }), DEPTH), /binary values/)
  t.match(msgpackShapeProblem(encode({ b: new Uint8Array(70000) }), DEPTH), /binary values/)
  t.match(msgpackShapeProblem(encode([new ExtData(1, new Uint8Array(3))]), DEPTH), /extension values/)
  t.match(msgpackShapeProblem(encode([new ExtData(1, new Uint8Array(300))]), DEPTH), /extension values/)
})

t.test('finite floats pass in both widths; NaN and the Infinities do not (JSON has no form for them)', async t => {
  // The largest and smallest magnitudes float32 holds: still finite in both widths.
  for (const value of [0, -0.5, 1.5, 3.4e38, -1.4e-45]) {
    t.equal(msgpackShapeProblem(encode({ f: value }), DEPTH), undefined, `float64 ${value}`)
    t.equal(msgpackShapeProblem(encode({ f: value }, { forceFloat32: true }), DEPTH), undefined, `float32 ${value}`)
  }
  for (const value of [NaN, Infinity, -Infinity]) {
    t.match(msgpackShapeProblem(encode({ f: [value] }), DEPTH), /NaN and Infinity/, `float64 ${value}`)
    t.match(msgpackShapeProblem(encode({ f: [value] }, { forceFloat32: true }), DEPTH), /NaN and Infinity/, `float32 ${value}`)
  }
  // A float cut short is truncated, not read past the end.
  t.match(msgpackShapeProblem(Uint8Array.from([0xcb, 0x7f, 0xf0]), DEPTH), /truncated/)
})

t.test('too deep, lying counts, truncation and trailing bytes are refused', async t => {
  t.match(msgpackShapeProblem(encode(nested(DEPTH + 1), DEEP), DEPTH), /nested deeper than 257 levels/)
  t.match(msgpackShapeProblem(Uint8Array.from([0x9f, 1, 2]), DEPTH), /declares more items/)
  t.match(msgpackShapeProblem(Uint8Array.from([0xdc, 0x01, 0x00, 1]), DEPTH), /declares more items/)
  t.match(msgpackShapeProblem(Uint8Array.from([0x81, 0xa1]), DEPTH), /declares more items|truncated/)
  const whole = encode({ type: 'publish', id: 1, topic: 'a', data: 'x'.repeat(300) })
  for (const cut of [1, 2, 10, whole.length - 1]) {
    t.ok(msgpackShapeProblem(whole.subarray(0, cut), DEPTH) !== undefined, `cut at ${cut} of ${whole.length}`)
  }
  t.match(msgpackShapeProblem(Uint8Array.from([...whole, 0xc0]), DEPTH), /bytes after/)
  t.match(msgpackShapeProblem(Uint8Array.from([0xc1]), DEPTH), /not MessagePack/)
  t.match(msgpackShapeProblem(new Uint8Array(0), DEPTH), /truncated/)
})
