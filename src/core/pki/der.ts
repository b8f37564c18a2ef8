/**
 * A minimal DER reader and writer: just what X.509 certificates and PKCS#10 requests need.
 * The signing hot path concatenates prebuilt byte strings with these length helpers instead of
 * going through a generic ASN.1 object model.
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Thrown for structurally invalid DER; callers translate it into their own coded errors. */
export class DerError extends Error {}

/** One decoded TLV: `start` is the tag offset, `contentStart`..`end` the value. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Reads the TLV starting at `offset` within `buf`, bounded by `limit`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated TLV header');
  const tag = buf[offset] as number;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let pos = offset + 1;
  let length = buf[pos++] as number;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new DerError('unsupported length encoding');
    if (pos + count > limit) throw new DerError('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[pos++] as number);
    if (length < 0x80 || (count > 1 && (buf[pos - count] as number) === 0)) throw new DerError('non-minimal length');
  }
  const end = pos + length;
  if (end > limit) throw new DerError('value runs past its container');
  return { tag, start: offset, contentStart: pos, end };
}

/** Reads all TLVs inside a constructed value. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const child = readTlv(buf, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

/** Reads a top-level TLV that must span the whole buffer. */
export function readWhole(buf: Uint8Array, expectedTag: number): Tlv {
  const tlv = readTlv(buf, 0);
  if (tlv.tag !== expectedTag) throw new DerError(`expected tag 0x${expectedTag.toString(16)}, found 0x${tlv.tag.toString(16)}`);
  if (tlv.end !== buf.length) throw new DerError('trailing bytes after the top-level value');
  return tlv;
}

export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new DerError(`${what} is missing`);
  if (tlv.tag !== tag) throw new DerError(`${what} has tag 0x${tlv.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return tlv;
}

export function content(buf: Buffer, tlv: Tlv): Buffer {
  return buf.subarray(tlv.contentStart, tlv.end);
}

export function whole(buf: Buffer, tlv: Tlv): Buffer {
  return buf.subarray(tlv.start, tlv.end);
}

/** Decodes an OBJECT IDENTIFIER value to dotted form. */
export function decodeOid(value: Uint8Array): string {
  if (value.length === 0) throw new DerError('empty OID');
  // Built as one string rather than an array joined: every certificate and CSR checked decodes
  // several of these on the signing path.
  let dotted = '';
  let acc = 0;
  for (let i = 0; i < value.length; i++) {
    const byte = value[i] as number;
    // X.690 8.19.2: an arc is encoded in the fewest bytes, so it never starts with 0x80. A padded
    // arc would decode to the same dotted OID as the canonical bytes (55 1d 80 11 as 2.5.29.17),
    // giving one extension two encodings that other parsers refuse.
    if (acc === 0 && byte === 0x80) throw new DerError('non-minimal OID arc');
    acc = acc * 128 + (byte & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if ((byte & 0x80) === 0) {
      if (dotted === '') {
        const first = acc < 80 ? Math.floor(acc / 40) : 2;
        dotted = `${first}.${acc - first * 40}`;
      } else {
        dotted += `.${acc}`;
      }
      acc = 0;
    } else if (i === value.length - 1) {
      throw new DerError('truncated OID');
    }
  }
  return dotted;
}

const encodedOids = new Map<string, Buffer>();

/** Encodes a dotted OID as a complete DER TLV (memoized: the signing path encodes the same few). */
export function encodeOid(dotted: string): Buffer {
  let encoded = encodedOids.get(dotted);
  if (encoded === undefined) {
    encoded = encodeOidUncached(dotted);
    if (encodedOids.size < 1024) encodedOids.set(dotted, encoded);
  }
  return encoded;
}

function encodeOidUncached(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const [a, b, ...rest] = arcs;
  if (a === undefined || b === undefined) throw new DerError(`bad OID ${dotted}`);
  const bytes: number[] = [];
  for (const arc of [a * 40 + b, ...rest]) {
    const chunk: number[] = [arc & 0x7f];
    let v = Math.floor(arc / 128);
    while (v > 0) {
      chunk.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    bytes.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(bytes));
}

/** Encodes a DER length. */
export function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  if (length < 0x100) return Buffer.from([0x81, length]);
  if (length < 0x10000) return Buffer.from([0x82, length >> 8, length & 0xff]);
  if (length < 0x1000000) return Buffer.from([0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
  throw new DerError('value too long');
}

/** Number of bytes the header of a TLV with this content length takes. */
export function headerSize(length: number): number {
  return length < 0x80 ? 2 : length < 0x100 ? 3 : length < 0x10000 ? 4 : 5;
}

/** Writes a TLV header at `offset` of `out`; returns the offset after it. */
export function writeHeader(out: Buffer, offset: number, tag: number, length: number): number {
  out[offset++] = tag;
  if (length < 0x80) {
    out[offset++] = length;
  } else if (length < 0x100) {
    out[offset++] = 0x81;
    out[offset++] = length;
  } else if (length < 0x10000) {
    out[offset++] = 0x82;
    out[offset++] = length >> 8;
    out[offset++] = length & 0xff;
  } else {
    out[offset++] = 0x83;
    out[offset++] = length >> 16;
    out[offset++] = (length >> 8) & 0xff;
    out[offset++] = length & 0xff;
  }
  return offset;
}

/** Builds one TLV from a tag and its content (which may be several concatenated TLVs). */
export function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
  return Buffer.concat([Buffer.from([tag]), encodeLength(body.length), body]);
}

export const seq = (...parts: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, ...parts);
export const set = (...parts: Uint8Array[]): Buffer => tlv(TAG.SET, ...parts);
export const octetString = (value: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, value);
export const bitString = (value: Uint8Array): Buffer => tlv(TAG.BIT_STRING, Buffer.from([0]), value);
export const bool = (value: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([value ? 0xff : 0]));
export const utf8 = (value: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(value, 'utf8'));
export const printable = (value: string): Buffer => tlv(TAG.PRINTABLE_STRING, Buffer.from(value, 'ascii'));
/** Context-specific tag: constructed ([n] EXPLICIT) or primitive ([n] IMPLICIT). */
export const contextTag = (n: number, constructed: boolean): number => 0x80 | (constructed ? 0x20 : 0) | n;

/** Encodes a non-negative integer given as big-endian magnitude bytes, minimally. */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const needsPad = ((trimmed[0] ?? 0) & 0x80) !== 0;
  return tlv(TAG.INTEGER, needsPad ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function smallInteger(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) throw new DerError('integer out of range');
  const bytes: number[] = [];
  let v = value;
  do {
    bytes.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  return unsignedInteger(Buffer.from(bytes));
}

/** RFC 5280's UTCTime years, 1950 through 2049, as instants: compared without building a Date. */
const UTC_TIME_FROM = Date.UTC(1950, 0, 1);
const UTC_TIME_UNTIL = Date.UTC(2050, 0, 1);

/** Bytes of the whole time TLV `writeTime` writes for this instant: UTCTime before 2050, else GeneralizedTime. */
export function timeSize(ms: number): number {
  return ms >= UTC_TIME_FROM && ms < UTC_TIME_UNTIL ? 15 : 17;
}

function writeDigits(out: Uint8Array, offset: number, value: number, width: number): number {
  for (let i = width - 1; i >= 0; i--) {
    out[offset + i] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return offset + width;
}

/**
 * Writes a time at `offset` of `out` as UTCTime before 2050 and GeneralizedTime after, as RFC 5280
 * requires (whole seconds, Z form); returns the offset after it. Digits go straight into the
 * buffer: the leaf template writes two of these per certificate.
 */
export function writeTime(out: Uint8Array, offset: number, ms: number): number {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const year = d.getUTCFullYear();
  const utc = timeSize(ms) === 15;
  if (!utc && (year < 0 || year > 9999)) throw new DerError(`year ${year} cannot be encoded as a certificate time`);
  out[offset++] = utc ? TAG.UTC_TIME : TAG.GENERALIZED_TIME;
  out[offset++] = utc ? 13 : 15;
  offset = utc ? writeDigits(out, offset, year % 100, 2) : writeDigits(out, offset, year, 4);
  offset = writeDigits(out, offset, d.getUTCMonth() + 1, 2);
  offset = writeDigits(out, offset, d.getUTCDate(), 2);
  offset = writeDigits(out, offset, d.getUTCHours(), 2);
  offset = writeDigits(out, offset, d.getUTCMinutes(), 2);
  offset = writeDigits(out, offset, d.getUTCSeconds(), 2);
  out[offset++] = 0x5a; // 'Z'
  return offset;
}

/** Encodes a time as UTCTime before 2050 and GeneralizedTime after, as RFC 5280 requires. */
export function encodeTime(ms: number): Buffer {
  const out = Buffer.allocUnsafe(timeSize(ms));
  writeTime(out, 0, ms);
  return out;
}

/**
 * Milliseconds of a UTC calendar time. Date.UTC rolls fields over (month 13 is next January,
 * hour 27 is 03:00 the next day) and reads years 0-99 as 1900-1999; a time field naming no real
 * instant is malformed, never another instant.
 */
function calendarTime(year: number, month: number, day: number, hour: number, minute: number, second: number, what: string): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day || d.getUTCHours() !== hour || d.getUTCMinutes() !== minute || d.getUTCSeconds() !== second) {
    throw new DerError(`${what} is not a valid calendar time`);
  }
  return d.getTime();
}

/** The decimal value of `width` ASCII digits at `offset`, or -1 if any byte is not a digit. */
function readDigits(buf: Uint8Array, offset: number, width: number): number {
  let value = 0;
  for (let i = offset; i < offset + width; i++) {
    const byte = buf[i] as number;
    // Bytes, not characters: 0xb4 is no digit, though node's ascii decoder would read it as "4".
    if (byte < 0x30 || byte > 0x39) return -1;
    value = value * 10 + (byte - 0x30);
  }
  return value;
}

/** Decodes a UTCTime or GeneralizedTime TLV (Z form only, as RFC 5280 requires). */
export function decodeTime(buf: Buffer, t: Tlv): number {
  const length = t.end - t.contentStart;
  let p = t.contentStart;
  let year: number;
  let what: string;
  if (t.tag === TAG.UTC_TIME) {
    what = 'UTCTime';
    if (length !== 13) throw new DerError('bad UTCTime');
    const yy = readDigits(buf, p, 2);
    year = yy < 0 ? -1 : yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  } else if (t.tag === TAG.GENERALIZED_TIME) {
    what = 'GeneralizedTime';
    if (length !== 15) throw new DerError('bad GeneralizedTime');
    year = readDigits(buf, p, 4);
    p += 4;
  } else {
    throw new DerError('expected a time value');
  }
  const month = readDigits(buf, p, 2);
  const day = readDigits(buf, p + 2, 2);
  const hour = readDigits(buf, p + 4, 2);
  const minute = readDigits(buf, p + 6, 2);
  const second = readDigits(buf, p + 8, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || buf[p + 10] !== 0x5a) throw new DerError(`bad ${what}`);
  return calendarTime(year, month, day, hour, minute, second, what);
}
