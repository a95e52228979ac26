// A MessagePack frame's shape, checked by one pass over its bytes before anything is decoded
// (docs/protocol.md §2, "MessagePack"). The decoder builds every value it meets, and a 60 KB frame can
// declare 60,000 nested arrays or an array of four billion items: this walk allocates nothing, and
// refuses such a frame at the first level too deep or the first count larger than the bytes left.
// It also refuses what has no JSON form: binary values (bin, and ext but timestamps), NaN and Infinity.

/** The ext type of MessagePack's own timestamps, the one extension with a JSON form (its ISO string). */
const TIMESTAMP_EXT = 0xff // -1 as a byte

/**
 * Why `bytes` is not one MessagePack value with at most `maxDepth` levels of maps and arrays, no binary
 * values and no non-finite floats, or undefined when it is (it may still fail to decode, e.g. a map
 * key that is a map).
 */
export function msgpackShapeProblem (bytes: Uint8Array, maxDepth: number): string | undefined {
  const end = bytes.length
  /** For each map or array being read, the items (map keys and values) still to come. */
  const open: number[] = []
  let pos = 0
  for (;;) {
    if (pos >= end) return 'truncated MessagePack'
    const head = bytes[pos++]
    /** Items of the map or array that starts here; -1 for any other value. */
    let items = -1
    /** Bytes of this value after its head (and after the length read below). */
    let skip = 0
    if (head <= 0x7f || head >= 0xe0) {
      // positive and negative fixint
    } else if (head <= 0x8f) {
      items = (head & 0x0f) * 2
    } else if (head <= 0x9f) {
      items = head & 0x0f
    } else if (head <= 0xbf) {
      skip = head & 0x1f
    } else {
      switch (head) {
        case 0xc0: case 0xc2: case 0xc3: break // nil, false, true
        case 0xc1: return 'not MessagePack (0xc1)'
        case 0xc4: case 0xc5: case 0xc6: return 'binary values are not allowed (they have no JSON form)'
        case 0xc7: case 0xc8: case 0xc9: { // ext 8/16/32: length, type, data
          const size = head === 0xc7 ? 1 : head === 0xc8 ? 2 : 4
          if (pos + size + 1 > end) return 'truncated MessagePack'
          if (bytes[pos + size] !== TIMESTAMP_EXT) return 'extension values other than timestamps are not allowed'
          skip = size + 1 + readUint(bytes, pos, size)
          break
        }
        case 0xca: case 0xcb: // float 32/64
          skip = head === 0xca ? 4 : 8
          if (pos + skip > end) return 'truncated MessagePack'
          if (nonFinite(bytes, pos, head === 0xca)) return 'NaN and Infinity are not allowed (they have no JSON form)'
          break
        case 0xce: case 0xd2: skip = 4; break
        case 0xcf: case 0xd3: skip = 8; break
        case 0xcc: case 0xd0: skip = 1; break
        case 0xcd: case 0xd1: skip = 2; break
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: // fixext 1/2/4/8/16: type, data
          if (pos >= end) return 'truncated MessagePack'
          if (bytes[pos] !== TIMESTAMP_EXT) return 'extension values other than timestamps are not allowed'
          skip = 1 + (1 << (head - 0xd4))
          break
        case 0xd9: case 0xda: case 0xdb: { // str 8/16/32
          const size = head === 0xd9 ? 1 : head === 0xda ? 2 : 4
          if (pos + size > end) return 'truncated MessagePack'
          skip = size + readUint(bytes, pos, size)
          break
        }
        case 0xdc: case 0xdd: case 0xde: case 0xdf: { // array 16/32, map 16/32
          const size = head === 0xdc || head === 0xde ? 2 : 4
          if (pos + size > end) return 'truncated MessagePack'
          items = readUint(bytes, pos, size) * (head >= 0xde ? 2 : 1)
          pos += size
          break
        }
      }
    }
    pos += skip
    if (pos > end) return 'truncated MessagePack'
    if (items >= 0) {
      if (open.length >= maxDepth) return `nested deeper than ${maxDepth} levels of maps and arrays`
      // Every item takes at least one byte: a larger count is a lie the decoder would allocate for.
      if (items > end - pos) return 'a map or array declares more items than the frame holds'
      if (items > 0) {
        open.push(items)
        continue
      }
    }
    // A whole value was read: it is an item of the innermost open map or array, which may end with it.
    for (;;) {
      if (open.length === 0) return pos === end ? undefined : 'bytes after the MessagePack value'
      if (--open[open.length - 1] > 0) break
      open.pop()
    }
  }
}

function readUint (bytes: Uint8Array, pos: number, size: number): number {
  if (size === 1) return bytes[pos]
  if (size === 2) return (bytes[pos] << 8) | bytes[pos + 1]
  return bytes[pos] * 0x1000000 + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3])
}

/** An IEEE 754 float (big-endian at `pos`) with every exponent bit set: NaN or an Infinity. */
function nonFinite (bytes: Uint8Array, pos: number, single: boolean): boolean {
  if ((bytes[pos] & 0x7f) !== 0x7f) return false
  return single ? (bytes[pos + 1] & 0x80) === 0x80 : (bytes[pos + 1] & 0xf0) === 0xf0
}
