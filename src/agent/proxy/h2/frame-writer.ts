import type { Writable } from 'node:stream';
import { FLAG, FRAME, FRAME_HEADER_BYTES, frame, writeFrameHeader } from './constants.js';

/** Unsent output above which a peer that does not read is cut off. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;

/**
 * How many further turns of the event loop a batch may wait for, each only while the turn before
 * added to it. Alternating harness runs (wrk -c16 keep-alive through both agents, 2026-11-29)
 * read 30,315-31,558 req/s waiting up to one or three turns against 26,911-30,075 flushing at
 * the end of every turn, at 14.5-16.2 against 16.5-17.5 ms of CPU per 1,000 requests per agent;
 * flushing more often than once a turn (every 2, 4 or 8 frames) read 24,586-29,100 against 30,760.
 */
export const MAX_EXTRA_TURNS = 3;

/**
 * Collects the frames the event loop produces and writes them to the socket in one write, in the
 * order they were queued: a relay turn that answers many streams costs one TLS record write, not
 * one per stream. When other streams are open (`othersMayAdd`), a batch waits for the next turn
 * while turns keep adding to it, up to MAX_EXTRA_TURNS, the way Linux's TCP autocorking holds
 * small writes while earlier ones are still queued: the agents' readers arrive spread over a few
 * turns, and one write for all of them costs the sender and the receiving agent less than one
 * per turn. A turn costs microseconds (its poll does not block while the batch waits), a turn
 * that adds nothing ends the wait, and a session with one stream never waits, so a lone request
 * is not delayed.
 *
 * The write is one buffer of exactly the batch's size, filled at the flush: DATA frame headers
 * are written straight into it and payloads copied once. Every buffer the writer allocates dies
 * within a few turns, so the garbage collector frees it young; a buffer kept across batches (an
 * arena reused until full) got promoted and, being mostly external memory, waited for a full
 * collection that a steady relay rarely triggers, while the process grew by about a megabyte a
 * second.
 */
export class FrameWriter {
  /** Per queued piece: its bytes, and for a DATA payload its stream id and flags (-1: bytes as they are). */
  private pieces: Buffer[] = [];
  private dataStream: number[] = [];
  private dataFlags: number[] = [];
  private bytes = 0;
  /** A turn-end check is pending. */
  private scheduled = false;
  private closed = false;
  private extraTurns = 0;
  private piecesAtTurnEnd = 0;
  private readonly onTurnEnd = (): void => {
    if (this.extraTurns < MAX_EXTRA_TURNS && this.pieces.length > this.piecesAtTurnEnd && this.othersMayAdd()) {
      this.extraTurns++;
      this.piecesAtTurnEnd = this.pieces.length;
      setImmediate(this.onTurnEnd);
      return;
    }
    this.scheduled = false;
    this.flush();
  };

  /**
   * `onOverflow` runs when the socket holds more unsent bytes than a reading peer would leave;
   * `othersMayAdd` says whether streams other than the one writing now are open.
   */
  constructor(
    private readonly socket: Writable,
    private readonly onOverflow: () => void,
    private readonly othersMayAdd: () => boolean = () => false,
  ) {}

  /** Queues raw bytes (the client preface) or a whole frame. */
  raw(buffer: Buffer): void {
    this.push(buffer, -1, 0, buffer.length);
  }

  control(type: number, flags: number, streamId: number, payload?: Buffer): void {
    this.raw(frame(type, flags, streamId, payload));
  }

  /** A DATA frame; `data` is referenced until the flush, a few turns at most, then copied: it must not be reused meanwhile. */
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
      this.extraTurns = 0;
      this.piecesAtTurnEnd = 0;
      setImmediate(this.onTurnEnd);
    }
  }
}

function uint32(value: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(value, 0);
  return payload;
}
