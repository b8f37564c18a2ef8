import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  CLIENT_PREFACE, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, FLAG, FRAME, FRAME_HEADER_BYTES, frame, H2ConnectionError, H2_ERROR,
  MAX_FRAME_SIZE_LIMIT, MAX_WINDOW, SETTING, writeFrameHeader,
} from './constants.js';
import { encodeHeaders, HpackDecoder, type HeaderList } from './hpack.js';
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

/** Largest header block, across CONTINUATION frames, we reassemble before decoding. */
const MAX_HEADER_BLOCK = 64 * 1024;
/** PINGs of ours that may wait for an answer at once. */
const MAX_PENDING_PINGS = 10;
/** Unsent output above which a peer that does not read is cut off. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;

const ERROR_NAMES = Object.fromEntries(Object.entries(H2_ERROR).map(([name, code]) => [code, name]));
/** The name of an HTTP/2 error code, for messages and logs. */
export function h2ErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`;
}

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
export class H2Session extends EventEmitter implements StreamOwner {
  private readonly streams = new Map<number, H2Stream>();
  private readonly decoder: HpackDecoder;
  private readonly pings = new Map<string, (error?: Error) => void>();
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private carry: Buffer | undefined;
  private prefaceSeen: boolean;
  private settingsSeen = false;
  private continuation: { id: number; flags: number; parts: Buffer[]; size: number } | undefined;
  private nextStreamId = 1;
  private lastPeerStreamId = 0;
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow: number;
  private recvCredit = 0;
  private peerStreamWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerMaxStreams = Infinity;
  private readonly blocked = new Set<H2Stream>();
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
    this.recvWindow = DEFAULT_WINDOW;
    this.prefaceSeen = o.role === 'client';
    if (o.role === 'client') this.queue(CLIENT_PREFACE);
    const settings = Buffer.alloc(4 * 6);
    [[SETTING.ENABLE_PUSH, 0], [SETTING.MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams], [SETTING.INITIAL_WINDOW_SIZE, o.streamWindow], [SETTING.MAX_HEADER_LIST_SIZE, o.maxHeaderListSize]].forEach(([id, value], i) => {
      settings.writeUInt16BE(id as number, i * 6);
      settings.writeUInt32BE(value as number, i * 6 + 2);
    });
    this.queue(frame(FRAME.SETTINGS, 0, 0, settings));
    if (o.connectionWindow > DEFAULT_WINDOW) this.windowUpdate(0, o.connectionWindow - DEFAULT_WINDOW);
    this.recvWindow = Math.max(DEFAULT_WINDOW, o.connectionWindow);
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

  get destroyed(): boolean {
    return this.destroyedFlag;
  }

  /** Streams currently open. */
  get streamCount(): number {
    return this.streams.size;
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
    this.queue(frame(FRAME.PING, 0, 0, payload));
    return true;
  }

  /** Graceful: GOAWAY, no new streams; the connection ends once the open streams are done. */
  close(): void {
    if (this.destroyedFlag) return;
    if (!this.goawaySent) {
      this.goawaySent = true;
      this.queue(this.goaway(H2_ERROR.NO_ERROR, ''));
    }
    this.finishIfIdle();
  }

  /** Ends the connection and every stream on it now. */
  destroy(error?: Error): void {
    if (this.destroyedFlag) return;
    this.destroyedFlag = true;
    this.error ??= error;
    const streamError = error ?? new Error('the tunnel session closed');
    for (const stream of [...this.streams.values()]) stream.destroy(streamError);
    this.streams.clear();
    for (const answered of this.pings.values()) answered(streamError);
    this.pings.clear();
    this.socket.destroy();
    this.emit('close', this.error);
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
      const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
      writeFrameHeader(header, 0, room, FRAME.DATA, 0, stream.id);
      this.queue(header);
      this.queue(offset === 0 && room === chunk.length ? chunk : chunk.subarray(offset, offset + room));
      stream.sendWindow -= room;
      this.sendWindow -= room;
      offset += room;
    }
    done();
  }

  sendEnd(stream: H2Stream): void {
    if (this.destroyedFlag || stream.rstCode !== undefined) return;
    this.queue(frame(FRAME.DATA, FLAG.END_STREAM, stream.id));
  }

  sendHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    const block = encodeHeaders(fields);
    let offset = 0;
    let type: number = FRAME.HEADERS;
    do {
      const size = Math.min(this.peerMaxFrameSize, block.length - offset);
      const last = offset + size === block.length;
      const flags = (last ? FLAG.END_HEADERS : 0) | (type === FRAME.HEADERS && endStream ? FLAG.END_STREAM : 0);
      this.queue(frame(type, flags, stream.id, block.subarray(offset, offset + size)));
      offset += size;
      type = FRAME.CONTINUATION;
    } while (offset < block.length);
  }

  consumed(stream: H2Stream, bytes: number): void {
    this.creditConnection(bytes);
    if (stream.remoteEnded || stream.destroyed) return;
    stream.recvCredit += bytes;
    if (stream.recvCredit >= this.o.streamWindow / 2) {
      this.windowUpdate(stream.id, stream.recvCredit);
      stream.recvWindow += stream.recvCredit;
      stream.recvCredit = 0;
    }
  }

  resetStream(stream: H2Stream, code: number): void {
    if (stream.rstCode === undefined && this.streams.has(stream.id)) {
      stream.rstCode = code;
      const payload = Buffer.allocUnsafe(4);
      payload.writeUInt32BE(code, 0);
      this.queue(frame(FRAME.RST_STREAM, 0, stream.id, payload));
    }
    stream.destroy(code === H2_ERROR.NO_ERROR || code === H2_ERROR.CANCEL ? undefined : new Error(`tunnel stream reset with ${h2ErrorName(code)}`));
  }

  streamDestroyed(stream: H2Stream): void {
    if (!this.streams.delete(stream.id)) return;
    this.blocked.delete(stream);
    // Destroyed before both ends finished: tell the peer the stream is gone.
    if (stream.rstCode === undefined && !(stream.localEnded && stream.remoteEnded) && !this.destroyedFlag) {
      stream.rstCode = H2_ERROR.CANCEL;
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(H2_ERROR.CANCEL, 0);
      this.queue(frame(FRAME.RST_STREAM, 0, stream.id, payload));
    }
    this.finishIfIdle();
  }

  // ---- output ----

  private queue(buffer: Buffer): void {
    if (this.destroyedFlag) return;
    this.out.push(buffer);
    this.outBytes += buffer.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.destroyedFlag || this.out.length === 0) return;
    const data = this.out.length === 1 ? (this.out[0] as Buffer) : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(data);
    if (this.socket.writableLength > MAX_UNSENT_BYTES) this.destroy(new Error('the tunnel peer stopped reading'));
  }

  private windowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.queue(frame(FRAME.WINDOW_UPDATE, 0, streamId, payload));
  }

  private creditConnection(bytes: number): void {
    this.recvCredit += bytes;
    if (this.recvCredit >= this.o.connectionWindow / 2) {
      this.windowUpdate(0, this.recvCredit);
      this.recvWindow += this.recvCredit;
      this.recvCredit = 0;
    }
  }

  private goaway(code: number, debug: string): Buffer {
    const payload = Buffer.alloc(8 + Buffer.byteLength(debug));
    payload.writeUInt32BE(this.lastPeerStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(debug, 8);
    return frame(FRAME.GOAWAY, 0, 0, payload);
  }

  private finishIfIdle(): void {
    if (this.destroyedFlag || this.streams.size > 0 || !(this.goawaySent || this.goawayReceived)) return;
    this.flush();
    this.socket.end();
  }

  /** A connection error: GOAWAY with `code`, then the connection ends (RFC 9113 section 5.4.1). */
  private fail(code: number, message: string): void {
    if (this.destroyedFlag) return;
    this.out.push(this.goaway(code, message));
    this.outBytes += this.out[this.out.length - 1]!.length;
    this.goawaySent = true;
    this.flush();
    this.socket.end();
    this.destroy(new Error(`tunnel HTTP/2 ${h2ErrorName(code)}: ${message}`));
  }

  // ---- input ----

  private read(chunk: Buffer): void {
    if (this.destroyedFlag) return;
    let data = this.carry === undefined ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = undefined;
    try {
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
      while (data.length - offset >= FRAME_HEADER_BYTES && !this.destroyedFlag) {
        const length = ((data[offset] as number) << 16) | ((data[offset + 1] as number) << 8) | (data[offset + 2] as number);
        if (length > DEFAULT_MAX_FRAME_SIZE) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${length} bytes, above the ${DEFAULT_MAX_FRAME_SIZE} allowed`);
        if (data.length - offset < FRAME_HEADER_BYTES + length) break;
        const type = data[offset + 3] as number;
        const flags = data[offset + 4] as number;
        const streamId = data.readUInt32BE(offset + 5) & 0x7fffffff;
        const payload = data.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
        offset += FRAME_HEADER_BYTES + length;
        this.dispatch(type, flags, streamId, payload);
      }
      if (offset < data.length && !this.destroyedFlag) this.carry = data.subarray(offset);
    } catch (err) {
      if (err instanceof H2ConnectionError) this.fail(err.code, err.message);
      else this.fail(H2_ERROR.INTERNAL_ERROR, err instanceof Error ? err.message : String(err));
    }
  }

  private dispatch(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsSeen && type !== FRAME.SETTINGS) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    if (this.continuation !== undefined && (type !== FRAME.CONTINUATION || streamId !== this.continuation.id)) {
      throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'a header block was interrupted');
    }
    switch (type) {
      case FRAME.DATA: return this.onData(flags, streamId, payload);
      case FRAME.HEADERS: return this.onHeaders(flags, streamId, payload);
      case FRAME.CONTINUATION: return this.onContinuation(flags, streamId, payload);
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

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
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
    if (flags & FLAG.END_HEADERS) this.onHeaderBlock(flags, streamId, fragment);
    else this.continuation = { id: streamId, flags, parts: [Buffer.from(fragment)], size: fragment.length };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const pending = this.continuation;
    if (pending === undefined || pending.id !== streamId) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    pending.size += payload.length;
    if (pending.size > MAX_HEADER_BLOCK) throw new H2ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, `header block above ${MAX_HEADER_BLOCK} bytes`);
    pending.parts.push(Buffer.from(payload));
    if ((flags & FLAG.END_HEADERS) === 0) return;
    this.continuation = undefined;
    this.onHeaderBlock(pending.flags, streamId, Buffer.concat(pending.parts));
  }

  private onHeaderBlock(flags: number, streamId: number, block: Buffer): void {
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
    if (this.goawaySent || this.streams.size >= this.o.maxConcurrentStreams) return this.streamError(streamId, H2_ERROR.REFUSED_STREAM);
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
    if (payload.length % 6 !== 0) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS of the wrong size');
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === SETTING.ENABLE_PUSH && value > 1) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'ENABLE_PUSH above 1');
      else if (id === SETTING.MAX_CONCURRENT_STREAMS) this.peerMaxStreams = value;
      else if (id === SETTING.INITIAL_WINDOW_SIZE) this.setPeerStreamWindow(value);
      else if (id === SETTING.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
        this.peerMaxFrameSize = value;
      }
      // HEADER_TABLE_SIZE: our encoder never uses the dynamic table. Unknown settings are ignored.
    }
    this.queue(frame(FRAME.SETTINGS, FLAG.ACK, 0));
    if (!this.settingsSeen) {
      this.settingsSeen = true;
      this.emit('connect');
    }
  }

  private setPeerStreamWindow(value: number): void {
    if (value > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE above 2^31-1');
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
      this.queue(frame(FRAME.PING, FLAG.ACK, 0, payload));
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
    const stream = this.streams.get(streamId);
    if (stream !== undefined) {
      this.resetStream(stream, code);
      return;
    }
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.queue(frame(FRAME.RST_STREAM, 0, streamId, payload));
  }
}
