import { DEFAULT_WINDOW, H2ConnectionError, H2_ERROR, MAX_WINDOW } from './constants.js';
import type { FrameWriter } from './frame-writer.js';
import type { H2Stream, StreamOwner } from './stream.js';

/**
 * The connection-level flow-control windows (RFC 9113 section 6.9), shared by all streams. Sending:
 * DATA goes out within both the stream's and the connection's window, and a write that finds no room
 * waits on its stream until a WINDOW_UPDATE or SETTINGS makes some. Receiving: the peer may send up to
 * our window, and read bytes are given back in one WINDOW_UPDATE once half of it is due.
 */
export class ConnectionFlow {
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private recvCredit = 0;
  private readonly blocked = new Set<H2Stream>();

  /**
   * `window` is our connection receive window; a resumed write goes back through `owner.sendData`,
   * which refuses streams that closed while they waited.
   */
  constructor(
    private readonly writer: FrameWriter,
    private readonly window: number,
    private readonly owner: Pick<StreamOwner, 'sendData'>,
  ) {
    // The peer starts at the protocol's 64 KiB; the WINDOW_UPDATE of announceWindow raises it to ours.
    this.recvWindow = Math.max(DEFAULT_WINDOW, window);
  }

  /** Right after our SETTINGS: tells the peer our window, if above the protocol's default. */
  announceWindow(): void {
    if (this.window > DEFAULT_WINDOW) this.writer.windowUpdate(0, this.window - DEFAULT_WINDOW);
  }

  /** Sends `chunk` as DATA frames of at most `maxFrameSize`; what finds no window waits on the stream. */
  send(stream: H2Stream, chunk: Buffer, done: (error?: Error | null) => void, maxFrameSize: number): void {
    let offset = 0;
    while (offset < chunk.length) {
      const room = Math.min(stream.sendWindow, this.sendWindow, maxFrameSize, chunk.length - offset);
      if (room <= 0) {
        stream.blocked = { chunk: offset === 0 ? chunk : chunk.subarray(offset), done };
        this.blocked.add(stream);
        return;
      }
      this.writer.data(stream.id, offset === 0 && room === chunk.length ? chunk : chunk.subarray(offset, offset + room), false);
      stream.sendWindow -= room;
      this.sendWindow -= room;
      offset += room;
    }
    done();
  }

  /** A WINDOW_UPDATE on stream 0. */
  sendWindowIncreased(increment: number): void {
    this.sendWindow += increment;
    if (this.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
    this.resumeBlocked();
  }

  /** Windows grew: waiting writes go on in the order they began to wait, while the connection has room. */
  resumeBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      this.resume(stream);
    }
  }

  /** The stream's window grew: its waiting write, if any, goes on. */
  resume(stream: H2Stream): void {
    const waiting = stream.blocked;
    if (waiting === undefined) return;
    stream.blocked = undefined;
    this.blocked.delete(stream);
    this.owner.sendData(stream, waiting.chunk, waiting.done);
  }

  /** The stream is gone: nothing of it waits any more. */
  forget(stream: H2Stream): void {
    this.blocked.delete(stream);
  }

  /** A DATA frame of `bytes` arrived. */
  received(bytes: number): void {
    if (bytes > this.recvWindow) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= bytes;
  }

  /** `bytes` received were read, or dropped, and may be sent again. */
  credit(bytes: number): void {
    this.recvCredit += bytes;
    if (this.recvCredit >= this.window / 2) {
      this.writer.windowUpdate(0, this.recvCredit);
      this.recvWindow += this.recvCredit;
      this.recvCredit = 0;
    }
  }
}
