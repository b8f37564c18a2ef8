import { CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, FLAG, FRAME, FRAME_HEADER_BYTES, H2ConnectionError, H2_ERROR } from './constants.js';

/** Largest header block, across CONTINUATION frames, reassembled before decoding. */
const MAX_HEADER_BLOCK = 64 * 1024;

/** Where a {@link FrameReader} delivers what it read. */
export interface FrameSink {
  /** Every frame but HEADERS and CONTINUATION. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): void;
  /** A HEADERS frame's whole header block, CONTINUATIONs joined, padding and priority removed; `flags` are the HEADERS frame's. */
  headerBlock(flags: number, streamId: number, block: Buffer): void;
  /** True once the connection is gone: the rest of a read is dropped. */
  readonly destroyed: boolean;
}

/**
 * Splits socket reads into HTTP/2 frames: checks a client's preface, keeps a frame cut across
 * reads until the rest arrives, and reassembles header blocks. Throws H2ConnectionError for
 * what makes the connection unusable (RFC 9113 sections 3.4, 4.2, 6.2, 6.10).
 */
export class FrameReader {
  private carry: Buffer | undefined;
  private prefaceSeen: boolean;
  private continuation: { id: number; flags: number; parts: Buffer[]; size: number } | undefined;

  constructor(
    expectPreface: boolean,
    private readonly sink: FrameSink,
  ) {
    this.prefaceSeen = !expectPreface;
  }

  push(chunk: Buffer): void {
    let data = this.carry === undefined ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = undefined;
    if (!this.prefaceSeen) {
      const n = Math.min(data.length, CLIENT_PREFACE.length);
      if (!data.subarray(0, n).equals(CLIENT_PREFACE.subarray(0, n))) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'not an HTTP/2 client preface');
      if (n < CLIENT_PREFACE.length) {
        this.carry = data;
        return;
      }
      this.prefaceSeen = true;
      data = data.subarray(CLIENT_PREFACE.length);
    }
    let offset = 0;
    while (data.length - offset >= FRAME_HEADER_BYTES && !this.sink.destroyed) {
      const length = ((data[offset] as number) << 16) | ((data[offset + 1] as number) << 8) | (data[offset + 2] as number);
      // We never announce a larger SETTINGS_MAX_FRAME_SIZE.
      if (length > DEFAULT_MAX_FRAME_SIZE) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${length} bytes, above the ${DEFAULT_MAX_FRAME_SIZE} allowed`);
      if (data.length - offset < FRAME_HEADER_BYTES + length) break;
      const type = data[offset + 3] as number;
      const flags = data[offset + 4] as number;
      const streamId = data.readUInt32BE(offset + 5) & 0x7fffffff;
      const payload = data.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
      offset += FRAME_HEADER_BYTES + length;
      this.route(type, flags, streamId, payload);
    }
    // Copied: a view would keep the whole read (up to a 16 KiB TLS record) alive until the rest arrives.
    if (offset < data.length && !this.sink.destroyed) this.carry = Buffer.from(data.subarray(offset));
  }

  private route(type: number, flags: number, streamId: number, payload: Buffer): void {
    const pending = this.continuation;
    if (pending !== undefined && (type !== FRAME.CONTINUATION || streamId !== pending.id)) {
      throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'a header block was interrupted');
    }
    if (type === FRAME.HEADERS) return this.headers(flags, streamId, payload);
    if (type !== FRAME.CONTINUATION) return this.sink.frame(type, flags, streamId, payload);
    if (pending === undefined) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    pending.size += payload.length;
    if (pending.size > MAX_HEADER_BLOCK) throw new H2ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, `header block above ${MAX_HEADER_BLOCK} bytes`);
    pending.parts.push(Buffer.from(payload));
    if ((flags & FLAG.END_HEADERS) === 0) return;
    this.continuation = undefined;
    this.sink.headerBlock(pending.flags, streamId, Buffer.concat(pending.parts));
  }

  private headers(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let start = 0;
    let padding = 0;
    if (flags & FLAG.PADDED) {
      padding = payload[0] ?? 0;
      start = 1;
    }
    if (flags & FLAG.PRIORITY) start += 5;
    if (start + padding > payload.length) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS padding exceeds the frame');
    const fragment = payload.subarray(start, payload.length - padding);
    if (flags & FLAG.END_HEADERS) this.sink.headerBlock(flags, streamId, fragment);
    // Copied: the socket's buffer may be reused before the block is complete.
    else this.continuation = { id: streamId, flags, parts: [Buffer.from(fragment)], size: fragment.length };
  }
}
