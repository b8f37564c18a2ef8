/**
 * HPACK (RFC 7541) for the tunnel's header blocks. The decoder is complete (static and dynamic
 * tables, Huffman strings, table size updates), since any HTTP/2 client may send us any of it.
 * The encoder only ever writes indexed static entries and literals without indexing, so it
 * keeps no state and the peer's table never holds anything of ours.
 */
import { H2ConnectionError, H2_ERROR } from './constants.js';
import { huffmanDecode } from './huffman.js';

/** Header fields in wire order; names are lower case. */
export type HeaderList = Array<readonly [name: string, value: string]>;

/** The value of header field `name` (lower case), or undefined. */
export function headerValue(fields: HeaderList, name: string): string | undefined {
  return fields.find(([n]) => n === name)?.[1];
}

const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** Per entry, on top of its name and value (RFC 7541 section 4.1). */
const ENTRY_OVERHEAD = 32;
/** The table size a peer may use before our SETTINGS say otherwise; we never raise it. */
export const HEADER_TABLE_SIZE = 4_096;

function compressionError(message: string): H2ConnectionError {
  return new H2ConnectionError(H2_ERROR.COMPRESSION_ERROR, `HPACK: ${message}`);
}

/** Decodes the header blocks of one connection, in order; its dynamic table lives as long as the connection. */
export class HpackDecoder {
  private readonly dynamic: Array<readonly [string, string]> = [];
  private dynamicSize = 0;
  private maxDynamicSize = HEADER_TABLE_SIZE;

  /** `maxListSize`: decoded size (names, values and 32 per field) above which the block is refused. */
  constructor(private readonly maxListSize: number) {}

  decode(block: Buffer): HeaderList {
    const fields: HeaderList = [];
    let listSize = 0;
    let offset = 0;
    let fieldSeen = false;
    const integer = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = (block[offset++] as number) & mask;
      if (value < mask) return value;
      for (let shift = 0; ; shift += 7) {
        if (offset >= block.length) throw compressionError('truncated integer');
        if (shift > 21) throw compressionError('integer too large');
        const byte = block[offset++] as number;
        value += (byte & 0x7f) * 2 ** shift;
        if ((byte & 0x80) === 0) return value;
      }
    };
    const string = (): string => {
      if (offset >= block.length) throw compressionError('truncated string');
      const huffman = ((block[offset] as number) & 0x80) !== 0;
      const length = integer(7);
      if (offset + length > block.length) throw compressionError('string runs past the header block');
      const bytes = block.subarray(offset, offset + length);
      offset += length;
      return huffman ? huffmanDecode(bytes) : bytes.toString('latin1');
    };
    const add = (name: string, value: string): void => {
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > this.maxListSize) throw compressionError(`header list larger than ${this.maxListSize} bytes`);
      fields.push([name, value]);
      fieldSeen = true;
    };
    while (offset < block.length) {
      const first = block[offset] as number;
      if (first & 0x80) {
        const [name, value] = this.entry(integer(7));
        add(name, value);
      } else if (first & 0x40) {
        const index = integer(6);
        const name = index === 0 ? string() : (this.entry(index)[0] as string);
        const value = string();
        add(name, value);
        this.insert(name, value);
      } else if (first & 0x20) {
        // A size update may only open a block (RFC 7541 section 4.2).
        if (fieldSeen) throw compressionError('dynamic table size update after a header field');
        const size = integer(5);
        if (size > HEADER_TABLE_SIZE) throw compressionError(`dynamic table size ${size} above the ${HEADER_TABLE_SIZE} allowed`);
        this.maxDynamicSize = size;
        this.evict(0);
      } else {
        // Literal without indexing (0000) or never indexed (0001): neither touches the table.
        const index = integer(4);
        const name = index === 0 ? string() : (this.entry(index)[0] as string);
        add(name, string());
      }
    }
    return fields;
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw compressionError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as readonly [string, string];
    const found = this.dynamic[index - STATIC_TABLE.length - 1];
    if (found === undefined) throw compressionError(`index ${index} is not in the table`);
    return found;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.evict(size);
    // An entry larger than the whole table empties it and is not kept (RFC 7541 section 4.4).
    if (size > this.maxDynamicSize) return;
    this.dynamic.unshift([name, value]);
    this.dynamicSize += size;
  }

  private evict(room: number): void {
    while (this.dynamicSize + room > this.maxDynamicSize && this.dynamic.length > 0) {
      const [name, value] = this.dynamic.pop() as readonly [string, string];
      this.dynamicSize -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}

function writeInteger(out: number[], value: number, prefixBits: number, firstByteFlags: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(firstByteFlags | value);
    return;
  }
  out.push(firstByteFlags | mask);
  let rest = value - mask;
  while (rest >= 0x80) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
}

function writeString(out: number[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  writeInteger(out, bytes.length, 7, 0);
  for (const b of bytes) out.push(b);
}

/** Encodes a header block without touching the peer's dynamic table. */
export function encodeHeaders(fields: HeaderList): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    let nameIndex = 0;
    let exact = 0;
    for (let i = 0; i < STATIC_TABLE.length; i++) {
      const [n, v] = STATIC_TABLE[i] as readonly [string, string];
      if (n !== name) continue;
      if (nameIndex === 0) nameIndex = i + 1;
      if (v === value) {
        exact = i + 1;
        break;
      }
    }
    if (exact !== 0) {
      writeInteger(out, exact, 7, 0x80);
      continue;
    }
    writeInteger(out, nameIndex, 4, 0x00);
    if (nameIndex === 0) writeString(out, name);
    writeString(out, value);
  }
  return Buffer.from(out);
}
