import { Duplex } from 'node:stream';
import type { HeaderList } from './hpack.js';

/** What a stream needs from its session; implemented by H2Session. */
export interface StreamOwner {
  sendData(stream: H2Stream, chunk: Buffer, done: (error?: Error | null) => void): void;
  sendEnd(stream: H2Stream): void;
  sendHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void;
  consumed(stream: H2Stream, bytes: number): void;
  resetStream(stream: H2Stream, code: number): void;
  streamDestroyed(stream: H2Stream): void;
}

/**
 * One HTTP/2 stream as a duplex byte stream: what is written goes out as DATA frames within the
 * peer's flow-control windows, DATA received is pushed to the reader, and END_STREAM maps to
 * end() both ways, so a half-closed TCP connection stays half-closed across the tunnel. Receive
 * window is given back only once the reader took the bytes, so a slow reader slows the peer.
 *
 * Events beside the Duplex ones: 'response' (client side; the final status and all fields).
 */
export class H2Stream extends Duplex {
  sendWindow: number;
  recvWindow: number;
  /** Bytes the reader took that the peer has not been given back yet. */
  recvCredit = 0;
  /** A write waiting for window: the part not yet sent and its callback. */
  blocked: { chunk: Buffer; done: (error?: Error | null) => void } | undefined;
  remoteEnded = false;
  localEnded = false;
  /** Client: a final response arrived. Server: one was sent. */
  responded = false;
  /** The RST_STREAM code that ended the stream, sent or received. */
  rstCode: number | undefined;
  private heldCredit = 0;

  constructor(
    private readonly owner: StreamOwner,
    readonly id: number,
    sendWindow: number,
    recvWindow: number,
  ) {
    super({ allowHalfOpen: true });
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /**
   * Server side: answers the request; `extra` are regular (lower-case) header fields. An answer
   * that ends the stream also ends the request with RST_STREAM NO_ERROR if it is still open.
   */
  respond(status: number, extra: HeaderList = [], endStream = false): void {
    if (this.responded || this.destroyed) return;
    this.responded = true;
    this.owner.sendHeaders(this, [[':status', String(status)], ...extra], endStream);
    if (!endStream) return;
    this.localEnded = true;
    // A complete answer to a request the client is still sending: it may stop without error
    // (RFC 9113 section 8.1), and the stream must not wait on a request body nobody reads.
    if (!this.remoteEnded) this.owner.resetStream(this, 0x0);
    else this.end();
  }

  /** Ends the stream at once with RST_STREAM `code`. */
  close(code: number): void {
    if (this.destroyed) return;
    this.owner.resetStream(this, code);
  }

  /** Session side: DATA arrived for the reader. */
  receive(data: Buffer): void {
    if (data.length === 0) return;
    if (this.push(data)) this.owner.consumed(this, data.length);
    else this.heldCredit += data.length;
  }

  /** Session side: the peer sent END_STREAM. */
  remoteEnd(): void {
    if (this.remoteEnded) return;
    this.remoteEnded = true;
    this.push(null);
  }

  override _read(): void {
    if (this.heldCredit === 0) return;
    const bytes = this.heldCredit;
    this.heldCredit = 0;
    this.owner.consumed(this, bytes);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.owner.sendData(this, chunk, done);
  }

  override _final(done: (error?: Error | null) => void): void {
    if (!this.localEnded) {
      this.localEnded = true;
      this.owner.sendEnd(this);
    }
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.blocked !== undefined) {
      const { done: writeDone } = this.blocked;
      this.blocked = undefined;
      writeDone(error ?? new Error('stream closed'));
    }
    this.owner.streamDestroyed(this);
    done(error);
  }
}
