import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, FLAG, FRAME, H2ConnectionError, H2_ERROR, h2ErrorName, MAX_WINDOW, SETTING,
} from './constants.js';
import { encodeHeaders, HpackDecoder, type HeaderList } from './hpack.js';
import { FrameReader, type FrameSink } from './frame-reader.js';
import { FrameWriter } from './frame-writer.js';
import { PeerLimits } from './peer-limits.js';
import { decodeSettings, encodeSettings } from './settings.js';
import { H2Stream, type StreamOwner } from './stream.js';

export interface H2SessionOptions {
  readonly role: 'client' | 'server';
  /** SETTINGS_INITIAL_WINDOW_SIZE we announce: how much each stream may send us unread. */
  readonly streamWindow: number;
  /** Our connection-level receive window, shared by all streams. */
  readonly connectionWindow: number;
  /** Streams the peer may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Largest decoded header list we accept (SETTINGS_MAX_HEADER_LIST_SIZE). */
  readonly maxHeaderListSize: number;
}

/** The payload of a DATA frame that only ends its stream. */
const NO_DATA = Buffer.alloc(0);
/** PINGs of ours that may wait for an answer at once. */
const MAX_PENDING_PINGS = 10;
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
  private readonly streams = new Map<number, H2Stream>();
  private readonly decoder: HpackDecoder;
  private readonly pings = new Map<string, (error?: Error) => void>();
  private readonly writer: FrameWriter;
  private readonly reader: FrameReader;
  private settingsSeen = false;
  private nextStreamId = 1;
  private lastPeerStreamId = 0;
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private recvCredit = 0;
  private peerStreamWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerMaxStreams = Infinity;
  private readonly blocked = new Set<H2Stream>();
  private readonly limits = new PeerLimits();
  private pingCounter = 0;
  private goawaySent = false;
  private goawayReceived = false;
  private destroyedFlag = false;
  private error: Error | undefined;

  constructor(
    private readonly socket: Duplex,
    private readonly o: H2SessionOptions,
  ) {
    super();
    this.decoder = new HpackDecoder(o.maxHeaderListSize);
    // The peer starts at the protocol's 64 KiB; the WINDOW_UPDATE below raises it to ours.
    this.recvWindow = Math.max(DEFAULT_WINDOW, o.connectionWindow);
    this.reader = new FrameReader(o.role === 'server', this);
    this.writer = new FrameWriter(
      socket,
      () => this.destroy(new Error('the tunnel peer stopped reading')),
      () => this.streams.size > 1,
    );
    if (o.role === 'client') this.writer.raw(CLIENT_PREFACE);
    const settings = encodeSettings([
      [SETTING.ENABLE_PUSH, 0],
      [SETTING.MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [SETTING.INITIAL_WINDOW_SIZE, o.streamWindow],
      [SETTING.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
    ]);
    this.writer.control(FRAME.SETTINGS, 0, 0, settings);
    if (o.connectionWindow > DEFAULT_WINDOW) this.writer.windowUpdate(0, o.connectionWindow - DEFAULT_WINDOW);
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
    return !this.closed && this.streams.size < this.peerMaxStreams && this.nextStreamId < MAX_WINDOW;
  }

  /** Client side: opens a stream with a request's header fields. */
  request(fields: HeaderList): H2Stream {
    if (this.o.role !== 'client') throw new Error('only a client opens streams');
    if (!this.canOpenStream()) throw new Error(this.closed ? 'the tunnel session is closing' : 'the tunnel session has no room for another stream');
    const stream = new H2Stream(this, this.nextStreamId, this.peerStreamWindow, this.o.streamWindow);
    this.nextStreamId += 2;
    this.streams.set(stream.id, stream);
    this.sendHeaders(stream, fields, false);
    return stream;
  }

  /** Sends a PING; `answered` runs when it is acknowledged, or with an error when the session ends first. */
  ping(answered: (error?: Error) => void): boolean {
    if (this.destroyedFlag || this.pings.size >= MAX_PENDING_PINGS) return false;
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(++this.pingCounter, 4);
    this.pings.set(payload.toString('hex'), answered);
    this.writer.control(FRAME.PING, 0, 0, payload);
    return true;
  }

  /** Graceful: GOAWAY, no new streams; the connection ends once the open streams are done. */
  close(): void {
    if (this.destroyedFlag) return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.writer.goaway(this.lastPeerStreamId, H2_ERROR.NO_ERROR, '');
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
    for (const answered of this.pings.values()) answered(streamError);
    this.pings.clear();
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
    let offset = 0;
    while (offset < chunk.length) {
      const room = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameSize, chunk.length - offset);
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

  sendEnd(stream: H2Stream): void {
    if (this.destroyedFlag || stream.rstCode !== undefined) return;
    this.writer.data(stream.id, NO_DATA, true);
  }

  sendHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    const block = encodeHeaders(fields);
    let offset = 0;
    let type: number = FRAME.HEADERS;
    do {
      const size = Math.min(this.peerMaxFrameSize, block.length - offset);
      const last = offset + size === block.length;
      const flags = (last ? FLAG.END_HEADERS : 0) | (type === FRAME.HEADERS && endStream ? FLAG.END_STREAM : 0);
      this.writer.control(type, flags, stream.id, block.subarray(offset, offset + size));
      offset += size;
      type = FRAME.CONTINUATION;
    } while (offset < block.length);
  }

  consumed(stream: H2Stream, bytes: number): void {
    this.creditConnection(bytes);
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
    stream.destroy(code === H2_ERROR.NO_ERROR || code === H2_ERROR.CANCEL ? undefined : new Error(`tunnel stream reset with ${h2ErrorName(code)}`));
  }

  streamDestroyed(stream: H2Stream): void {
    if (!this.streams.delete(stream.id)) return;
    this.blocked.delete(stream);
    // Destroyed before both ends finished: tell the peer the stream is gone.
    if (stream.rstCode === undefined && !(stream.localEnded && stream.remoteEnded) && !this.destroyedFlag) {
      stream.rstCode = H2_ERROR.CANCEL;
      this.writer.rstStream(stream.id, H2_ERROR.CANCEL);
    }
    this.finishIfIdle();
  }

  // ---- flow control and ending ----

  private creditConnection(bytes: number): void {
    this.recvCredit += bytes;
    if (this.recvCredit >= this.o.connectionWindow / 2) {
      this.writer.windowUpdate(0, this.recvCredit);
      this.recvWindow += this.recvCredit;
      this.recvCredit = 0;
    }
  }

  private finishIfIdle(): void {
    if (this.destroyedFlag || this.streams.size > 0 || !(this.goawaySent || this.goawayReceived)) return;
    this.writer.flush();
    this.endSocket();
  }

  /** A connection error: GOAWAY with `code`, then the connection ends (RFC 9113 section 5.4.1). */
  private fail(code: number, message: string): void {
    if (this.destroyedFlag) return;
    this.writer.goaway(this.lastPeerStreamId, code, message);
    this.goawaySent = true;
    this.shutDown(new Error(`tunnel HTTP/2 ${h2ErrorName(code)}: ${message}`), true);
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
    if (!this.settingsSeen && type !== FRAME.SETTINGS) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    switch (type) {
      case FRAME.DATA: return this.onData(flags, streamId, payload);
      case FRAME.PRIORITY:
        if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.streamError(streamId, H2_ERROR.FRAME_SIZE_ERROR);
        return;
      case FRAME.RST_STREAM: return this.onRstStream(streamId, payload);
      case FRAME.SETTINGS: return this.onSettings(flags, streamId, payload);
      case FRAME.PUSH_PROMISE: throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE, though push is disabled');
      case FRAME.PING: return this.onPing(flags, streamId, payload);
      case FRAME.GOAWAY: return this.onGoaway(streamId, payload);
      case FRAME.WINDOW_UPDATE: return this.onWindowUpdate(streamId, payload);
      default: return; // Unknown frame types are ignored (RFC 9113 section 4.1).
    }
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole frame, padding included (RFC 9113 section 6.9.1).
    if (payload.length > this.recvWindow) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= payload.length;
    let data = payload;
    if (flags & FLAG.PADDED) {
      const padding = payload.length > 0 ? (payload[0] as number) : 0;
      if (payload.length === 0 || padding >= payload.length) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA padding exceeds the frame');
      data = payload.subarray(1, payload.length - padding);
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      this.checkNotIdle(streamId, 'DATA');
      // A stream we already closed: its bytes still count against the connection's window.
      this.creditConnection(payload.length);
      return;
    }
    if (stream.remoteEnded) {
      this.creditConnection(payload.length);
      this.streamError(streamId, H2_ERROR.STREAM_CLOSED);
      return;
    }
    if (payload.length > stream.recvWindow) {
      this.creditConnection(payload.length);
      this.streamError(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
      return;
    }
    stream.recvWindow -= payload.length;
    if (data.length < payload.length) this.consumed(stream, payload.length - data.length);
    stream.receive(data);
    if (flags & FLAG.END_STREAM) stream.remoteEnd();
  }

  /** FrameSink: a whole header block. */
  headerBlock(flags: number, streamId: number, block: Buffer): void {
    if (!this.settingsSeen) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    // Decoded even for a stream we refuse: the peer's encoder state moved on with it.
    const fields = this.decoder.decode(block);
    const endStream = (flags & FLAG.END_STREAM) !== 0;
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      if (this.o.role === 'client' && !stream.responded) return this.onResponse(stream, fields, endStream);
      // Trailers: they must end the stream.
      if (!endStream) return this.streamError(streamId, H2_ERROR.PROTOCOL_ERROR);
      stream.remoteEnd();
      return;
    }
    if (this.o.role === 'client' || streamId % 2 === 0) {
      this.checkNotIdle(streamId, 'HEADERS');
      return;
    }
    if (streamId <= this.lastPeerStreamId) throw new H2ConnectionError(H2_ERROR.STREAM_CLOSED, `HEADERS on closed stream ${streamId}`);
    this.lastPeerStreamId = streamId;
    if (this.goawaySent) return this.streamError(streamId, H2_ERROR.REFUSED_STREAM);
    if (this.streams.size >= this.o.maxConcurrentStreams) {
      this.limits.streamRefused();
      return this.streamError(streamId, H2_ERROR.REFUSED_STREAM);
    }
    const opened = new H2Stream(this, streamId, this.peerStreamWindow, this.o.streamWindow);
    this.streams.set(streamId, opened);
    this.emit('stream', opened, fields);
    if (endStream) opened.remoteEnd();
  }

  private onResponse(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    const status = Number(fields.find(([name]) => name === ':status')?.[1]);
    if (!Number.isInteger(status) || status < 100 || status > 999) return this.streamError(stream.id, H2_ERROR.PROTOCOL_ERROR);
    if (status < 200) {
      // Informational answers come before the final one and may not end the stream.
      if (endStream) this.streamError(stream.id, H2_ERROR.PROTOCOL_ERROR);
      return;
    }
    stream.responded = true;
    stream.emit('response', status, fields);
    if (endStream) stream.remoteEnd();
  }

  private onRstStream(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'RST_STREAM of the wrong size');
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.checkNotIdle(streamId, 'RST_STREAM');
    // Only a server starts work (a backend connection) for each stream a peer opens.
    if (this.o.role === 'server') this.limits.peerReset();
    const code = payload.readUInt32BE(0);
    stream.rstCode = code;
    stream.destroy(code === H2_ERROR.NO_ERROR || code === H2_ERROR.CANCEL ? undefined : new Error(`the tunnel peer reset the stream with ${h2ErrorName(code)}`));
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & FLAG.ACK) {
      if (payload.length !== 0) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    const settings = decodeSettings(payload);
    if (settings.maxConcurrentStreams !== undefined) this.peerMaxStreams = settings.maxConcurrentStreams;
    if (settings.maxFrameSize !== undefined) this.peerMaxFrameSize = settings.maxFrameSize;
    if (settings.initialWindowSize !== undefined) this.setPeerStreamWindow(settings.initialWindowSize);
    this.writer.control(FRAME.SETTINGS, FLAG.ACK, 0);
    if (!this.settingsSeen) {
      this.settingsSeen = true;
      this.emit('connect');
    }
  }

  private setPeerStreamWindow(value: number): void {
    const delta = value - this.peerStreamWindow;
    this.peerStreamWindow = value;
    for (const stream of this.streams.values()) {
      stream.sendWindow += delta;
      if (stream.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window above 2^31-1');
    }
    if (delta > 0) this.resumeBlocked();
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'PING of the wrong size');
    if ((flags & FLAG.ACK) === 0) {
      this.writer.control(FRAME.PING, FLAG.ACK, 0, payload);
      return;
    }
    const key = payload.toString('hex');
    const answered = this.pings.get(key);
    this.pings.delete(key);
    answered?.();
  }

  private onGoaway(streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'GOAWAY too short');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fffffff;
    const code = payload.readUInt32BE(4);
    this.goawayReceived = true;
    // Our streams the peer never saw may be retried elsewhere; they end here.
    for (const stream of [...this.streams.values()]) {
      if (stream.id > lastStreamId && stream.id % 2 === (this.o.role === 'client' ? 1 : 0)) {
        stream.rstCode = H2_ERROR.REFUSED_STREAM;
        stream.destroy(new Error('the tunnel peer went away before it took the stream'));
      }
    }
    this.emit('goaway', code);
    this.finishIfIdle();
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong size');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.resumeBlocked();
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.checkNotIdle(streamId, 'WINDOW_UPDATE');
    if (increment === 0) return this.streamError(streamId, H2_ERROR.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
    this.resume(stream);
  }

  private resumeBlocked(): void {
    for (const stream of [...this.blocked]) {
      if (this.sendWindow <= 0) return;
      this.resume(stream);
    }
  }

  private resume(stream: H2Stream): void {
    const waiting = stream.blocked;
    if (waiting === undefined) return;
    stream.blocked = undefined;
    this.blocked.delete(stream);
    this.sendData(stream, waiting.chunk, waiting.done);
  }

  /** A frame for a stream that was never opened is a connection error (RFC 9113 section 5.1). */
  private checkNotIdle(streamId: number, what: string): void {
    const ours = streamId % 2 === (this.o.role === 'client' ? 1 : 0);
    const idle = ours ? streamId >= this.nextStreamId : streamId > this.lastPeerStreamId;
    if (idle) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${what} on idle stream ${streamId}`);
  }

  /** Ends one stream with RST_STREAM `code`; the connection goes on. */
  private streamError(streamId: number, code: number): void {
    if (code !== H2_ERROR.REFUSED_STREAM) this.limits.streamError();
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      this.resetStream(stream, code);
      return;
    }
    this.writer.rstStream(streamId, code);
  }
}
