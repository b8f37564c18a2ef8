import type { Duplex } from 'node:stream';
import { FLAG, FRAME, FRAME_HEADER_BYTES, frame, writeFrameHeader } from './constants.js';

/** Unsent output above which a peer that does not read is cut off. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;

/**
 * Collects the frames one turn of the event loop produces and writes them to the socket in one
 * write, in the order they were queued: a relay turn that answers many streams costs one TLS
 * record write, not one per stream.
 */
export class FrameWriter {
  private out: Buffer[] = [];
  private outBytes = 0;
  private scheduled = false;
  private closed = false;

  /** `onOverflow` runs when the socket holds more unsent bytes than a reading peer would leave. */
  constructor(
    private readonly socket: Duplex,
    private readonly onOverflow: () => void,
  ) {}

  /** Queues raw bytes (the client preface) or a whole frame. */
  raw(buffer: Buffer): void {
    if (this.closed) return;
    this.out.push(buffer);
    this.outBytes += buffer.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  control(type: number, flags: number, streamId: number, payload?: Buffer): void {
    this.raw(frame(type, flags, streamId, payload));
  }

  /** A DATA frame; `data` is referenced, not copied, until the flush. */
  data(streamId: number, data: Buffer, endStream: boolean): void {
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    writeFrameHeader(header, 0, data.length, FRAME.DATA, endStream ? FLAG.END_STREAM : 0, streamId);
    this.raw(header);
    if (data.length > 0) this.raw(data);
  }

  rstStream(streamId: number, code: number): void {
    this.control(FRAME.RST_STREAM, 0, streamId, uint32(code));
  }

  windowUpdate(streamId: number, increment: number): void {
    this.control(FRAME.WINDOW_UPDATE, 0, streamId, uint32(increment));
  }

  goaway(lastStreamId: number, code: number, debug: string): void {
    const payload = Buffer.alloc(8 + Buffer.byteLength(debug));
    payload.writeUInt32BE(lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(debug, 8);
    this.control(FRAME.GOAWAY, 0, 0, payload);
  }

  /** Writes what is queued now. */
  flush(): void {
    this.scheduled = false;
    if (this.closed || this.out.length === 0) return;
    const data = this.out.length === 1 ? (this.out[0] as Buffer) : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(data);
    if (this.socket.writableLength > MAX_UNSENT_BYTES) this.onOverflow();
  }

  /** Drops what is queued; nothing more is written. */
  close(): void {
    this.closed = true;
    this.out = [];
    this.outBytes = 0;
  }
}

function uint32(value: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(value, 0);
  return payload;
}
