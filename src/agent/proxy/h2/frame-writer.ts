import type { Duplex } from 'node:stream';
import { FLAG, FRAME, FRAME_HEADER_BYTES, frame, writeFrameHeader } from './constants.js';

/** Unsent output above which a peer that does not read is cut off. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;

/**
 * Collects the frames one turn of the event loop produces and writes them to the socket in one
 * write, in the order they were queued: a relay turn that answers many streams costs one TLS
 * record write, not one per stream. The write is one buffer of exactly the turn's size, filled
 * at the flush: DATA frame headers are written straight into it and payloads copied once. Every
 * buffer the writer allocates dies within the turn, so the garbage collector frees it young; a
 * buffer kept across turns (an arena reused until full) got promoted and, being mostly external
 * memory, waited for a full collection that a steady relay rarely triggers, while the process
 * grew by about a megabyte a second.
 */
export class FrameWriter {
  /** Per queued piece: its bytes, and for a DATA payload its stream id and flags (-1: bytes as they are). */
  private pieces: Buffer[] = [];
  private dataStream: number[] = [];
  private dataFlags: number[] = [];
  private bytes = 0;
  private scheduled = false;
  private closed = false;

  /** `onOverflow` runs when the socket holds more unsent bytes than a reading peer would leave. */
  constructor(
    private readonly socket: Duplex,
    private readonly onOverflow: () => void,
  ) {}

  /** Queues raw bytes (the client preface) or a whole frame. */
  raw(buffer: Buffer): void {
    this.push(buffer, -1, 0, buffer.length);
  }

  control(type: number, flags: number, streamId: number, payload?: Buffer): void {
    this.raw(frame(type, flags, streamId, payload));
  }

  /** A DATA frame; `data` is referenced until the flush at the end of this turn, then copied. */
  data(streamId: number, data: Buffer, endStream: boolean): void {
    this.push(data, streamId, endStream ? FLAG.END_STREAM : 0, FRAME_HEADER_BYTES + data.length);
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
    if (this.closed || this.pieces.length === 0) return;
    const out = Buffer.allocUnsafe(this.bytes);
    let offset = 0;
    for (let i = 0; i < this.pieces.length; i++) {
      const piece = this.pieces[i] as Buffer;
      const streamId = this.dataStream[i] as number;
      if (streamId >= 0) {
        writeFrameHeader(out, offset, piece.length, FRAME.DATA, this.dataFlags[i] as number, streamId);
        offset += FRAME_HEADER_BYTES;
      }
      offset += piece.copy(out, offset);
    }
    this.pieces = [];
    this.dataStream = [];
    this.dataFlags = [];
    this.bytes = 0;
    this.socket.write(out);
    if (this.socket.writableLength > MAX_UNSENT_BYTES) this.onOverflow();
  }

  /** Drops what is queued; nothing more is written. */
  close(): void {
    this.closed = true;
    this.pieces = [];
    this.dataStream = [];
    this.dataFlags = [];
    this.bytes = 0;
  }

  private push(piece: Buffer, streamId: number, flags: number, bytes: number): void {
    if (this.closed) return;
    this.pieces.push(piece);
    this.dataStream.push(streamId);
    this.dataFlags.push(flags);
    this.bytes += bytes;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }
}

function uint32(value: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(value, 0);
  return payload;
}
