import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { CLIENT_PREFACE, FLAG, FRAME, H2ConnectionError, H2_ERROR, h2ErrorName, resetError, SETTING } from './constants.js';
import { ConnectionFlow } from './connection-flow.js';
import { FrameReader, type FrameSink } from './frame-reader.js';
import { FrameWriter } from './frame-writer.js';
import type { Goaway } from './frame-payloads.js';
import { encodeHeaders, type HeaderList } from './hpack.js';
import { IncomingFrames } from './incoming-frames.js';
import { PeerSettingsInEffect } from './peer-settings.js';
import { PingTracker } from './ping-tracker.js';
import type { H2SessionOptions } from './session-options.js';
import { encodeSettings } from './settings.js';
import { H2Stream, type StreamOwner } from './stream.js';
import { StreamTable } from './stream-table.js';

export type { H2SessionOptions } from './session-options.js';

/** The payload of a DATA frame that only ends its stream. */
const NO_DATA = Buffer.alloc(0);
/** How long an ended connection waits for the peer to close its side before it is destroyed. */
const LINGER_MS = 1_000;

/**
 * One HTTP/2 connection (RFC 9113) over an established socket, as the agents' tunnel uses it:
 * CONNECT streams, flow control, PING, GOAWAY. Reading parses every frame of a socket read in
 * one pass, and everything written in one turn of the event loop leaves in one socket write; node's
 * own http2 module crosses from C++ into JavaScript for every stream's every chunk, which a
 * sidecar relaying many small messages pays for on each one.
 *
 * Events: 'stream' (server: stream, fields), 'connect' (the peer's first SETTINGS arrived),
 * 'goaway' (code), 'close' (error or undefined).
 */
export class H2Session extends EventEmitter implements StreamOwner, FrameSink {
  private readonly streams: StreamTable;
  private readonly pings = new PingTracker();
  private readonly peer = new PeerSettingsInEffect();
  private readonly writer: FrameWriter;
  private readonly reader: FrameReader;
  private readonly flow: ConnectionFlow;
  private readonly incoming: IncomingFrames;
  private goawaySent = false;
  private goawayReceived = false;
  private destroyedFlag = false;
  private error: Error | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly o: H2SessionOptions,
  ) {
    super();
    this.streams = new StreamTable(o.role);
    this.reader = new FrameReader(o.role === 'server', this);
    this.writer = new FrameWriter(
      socket,
      () => this.destroy(new Error('the tunnel peer stopped reading')),
      () => this.streams.size > 1,
    );
    this.flow = new ConnectionFlow(this.writer, o.connectionWindow, this);
    this.incoming = new IncomingFrames({
      options: o,
      streams: this.streams,
      flow: this.flow,
      pings: this.pings,
      peer: this.peer,
      writer: this.writer,
      owner: this,
      goawaySent: () => this.goawaySent,
      connected: () => this.emit('connect'),
      streamOpened: (stream, fields) => this.emit('stream', stream, fields),
      wentAway: (goaway) => this.peerWentAway(goaway),
    });
    if (o.role === 'client') this.writer.raw(CLIENT_PREFACE);
    const settings = encodeSettings([
      [SETTING.ENABLE_PUSH, 0],
      [SETTING.MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, o.streamWindow],
      [SETTING.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
    ]);
    this.writer.control(FRAME.SETTINGS, 0, 0, settings);
    this.flow.announceWindow();
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (err: Error) => {
      this.error ??= err;
    });
    socket.on('close', () => this.destroy(this.error));
  }

  /** No new streams: GOAWAY was sent or received, or the session is gone. */
  get closed(): boolean {
    return this.goawaySent || this.goawayReceived || this.destroyedFlag;
  }

  /** Also FrameSink's: reading stops once the session is gone. */
  get destroyed(): boolean {
    return this.destroyedFlag;
  }

  /** Whether another stream may be opened now, within the peer's limit. */
  canOpenStream(): boolean {
    return !this.closed && this.streams.size < this.peer.maxStreams && this.streams.ownIdsLeft;
  }

  /** Client side: opens a stream with a request's header fields. */
  request(fields: HeaderList): H2Stream {
    if (this.o.role !== 'client') throw new Error('only a client opens streams');
    if (!this.canOpenStream()) throw new Error(this.closed ? 'the tunnel session is closing' : 'the tunnel session has no room for another stream');
    const stream = new H2Stream(this, this.streams.takeOwnId(), this.peer.streamWindow, this.o.streamWindow);
    this.streams.add(stream);
    this.sendHeaders(stream, fields, false);
    return stream;
  }

  /** Sends a PING; `answered` runs when it is acknowledged, or with an error when the session ends first. */
  ping(answered: (error?: Error) => void): boolean {
    if (this.destroyedFlag) return false;
    const payload = this.pings.start(answered);
    if (payload === undefined) return false;
    this.writer.control(FRAME.PING, 0, 0, payload);
    return true;
  }

  /** Graceful: GOAWAY, no new streams; the connection ends once the open streams are done. */
  close(): void {
    if (this.destroyedFlag) return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.writer.goaway(this.streams.lastPeerId, H2_ERROR.NO_ERROR, '');
    }
    this.finishIfIdle();
  }

  /** Ends the connection and every stream on it now. */
  destroy(error?: Error): void {
    this.shutDown(error, false);
  }

  /**
   * `graceful`: what is queued still goes out and the socket ends with a FIN (a GOAWAY the peer
   * should read), and is destroyed only if the peer has not closed its side within a second.
   */
  private shutDown(error: Error | undefined, graceful: boolean): void {
    if (this.destroyedFlag) return;
    if (graceful) this.writer.flush();
    this.destroyedFlag = true;
    this.error ??= error;
    const streamError = error ?? new Error('the tunnel session closed');
    for (const stream of [...this.streams.values()]) stream.destroy(streamError);
    this.streams.clear();
    this.pings.failAll(streamError);
    if (graceful) this.endSocket();
    else this.socket.destroy();
    this.writer.close();
    this.emit('close', this.error);
  }

  private endSocket(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  // ---- StreamOwner: what streams ask of the connection ----

  sendData(stream: H2Stream, chunk: Buffer, done: (error?: Error | null) => void): void {
    if (this.destroyedFlag || stream.rstCode !== undefined) {
      done(new Error('the tunnel stream is closed'));
      return;
    }
    this.flow.send(stream, chunk, done, this.peer.maxFrameSize);
  }

  sendEnd(stream: H2Stream): void {
    if (this.destroyedFlag || stream.rstCode !== undefined) return;
    this.writer.data(stream.id, NO_DATA, true);
  }

  sendHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    const block = encodeHeaders(fields);
    let offset = 0;
    let type: number = FRAME.HEADERS;
    do {
      const size = Math.min(this.peer.maxFrameSize, block.length - offset);
      const last = offset + size === block.length;
      const flags = (last ? FLAG.END_HEADERS : 0) | (type === FRAME.HEADERS && endStream ? FLAG.END_STREAM : 0);
      this.writer.control(type, flags, stream.id, block.subarray(offset, offset + size));
      offset += size;
      type = FRAME.CONTINUATION;
    } while (offset < block.length);
  }

  consumed(stream: H2Stream, bytes: number): void {
    this.flow.credit(bytes);
    if (stream.remoteEnded || stream.destroyed) return;
    stream.recvCredit += bytes;
    if (stream.recvCredit >= this.o.streamWindow / 2) {
      this.writer.windowUpdate(stream.id, stream.recvCredit);
      stream.recvWindow += stream.recvCredit;
      stream.recvCredit = 0;
    }
  }

  resetStream(stream: H2Stream, code: number): void {
    if (stream.rstCode === undefined && this.streams.has(stream.id)) {
      stream.rstCode = code;
      this.writer.rstStream(stream.id, code);
    }
    stream.destroy(resetError(code, 'tunnel stream reset with'));
  }

  streamDestroyed(stream: H2Stream): void {
    if (!this.streams.delete(stream.id)) return;
    this.flow.forget(stream);
    // Destroyed before both ends finished: tell the peer the stream is gone.
    if (stream.rstCode === undefined && !(stream.localEnded && stream.remoteEnded) && !this.destroyedFlag) {
      stream.rstCode = H2_ERROR.CANCEL;
      this.writer.rstStream(stream.id, H2_ERROR.CANCEL);
    }
    this.finishIfIdle();
  }

  // ---- ending ----

  private finishIfIdle(): void {
    if (this.destroyedFlag || this.streams.size > 0 || !(this.goawaySent || this.goawayReceived)) return;
    this.writer.flush();
    this.endSocket();
  }

  /** A connection error: GOAWAY with `code`, then the connection ends (RFC 9113 section 5.4.1). */
  private fail(code: number, message: string): void {
    if (this.destroyedFlag) return;
    this.writer.goaway(this.streams.lastPeerId, code, message);
    this.goawaySent = true;
    this.shutDown(new Error(`tunnel HTTP/2 ${h2ErrorName(code)}: ${message}`), true);
  }

  /** The peer sent GOAWAY: it takes no new streams, and the connection ends once the open ones are done. */
  private peerWentAway({ lastStreamId, code }: Goaway): void {
    this.goawayReceived = true;
    // Our streams the peer never saw may be retried elsewhere; they end here.
    for (const stream of [...this.streams.values()]) {
      if (stream.id > lastStreamId && this.streams.isOurs(stream.id)) {
        stream.rstCode = H2_ERROR.REFUSED_STREAM;
        stream.destroy(new Error('the tunnel peer went away before it took the stream'));
      }
    }
    this.emit('goaway', code);
    this.finishIfIdle();
  }

  // ---- input ----

  private read(chunk: Buffer): void {
    if (this.destroyedFlag) return;
    try {
      this.reader.push(chunk);
    } catch (err) {
      if (err instanceof H2ConnectionError) this.fail(err.code, err.message);
      else this.fail(H2_ERROR.INTERNAL_ERROR, err instanceof Error ? err.message : String(err));
    }
  }

  /** FrameSink: every frame but a header block. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    this.incoming.frame(type, flags, streamId, payload);
  }

  /** FrameSink: a whole header block. */
  headerBlock(flags: number, streamId: number, block: Buffer): void {
    this.incoming.headerBlock(flags, streamId, block);
  }
}
