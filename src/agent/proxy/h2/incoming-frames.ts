import { FLAG, FRAME, H2ConnectionError, H2_ERROR, MAX_WINDOW, resetError } from './constants.js';
import type { ConnectionFlow } from './connection-flow.js';
import type { FrameSink } from './frame-reader.js';
import type { FrameWriter } from './frame-writer.js';
import { checkPing, decodeGoaway, decodeRstStream, decodeSettingsFrame, decodeWindowUpdate, type Goaway, priorityHasValidSize, unpaddedData } from './frame-payloads.js';
import { HpackDecoder, type HeaderList } from './hpack.js';
import { PeerLimits } from './peer-limits.js';
import type { PeerSettingsInEffect } from './peer-settings.js';
import type { PingTracker } from './ping-tracker.js';
import type { H2SessionOptions } from './session-options.js';
import { H2Stream, type StreamOwner } from './stream.js';
import type { StreamTable } from './stream-table.js';

/** The parts of its session that received frames read and change. */
export interface IncomingFramesContext {
  readonly options: H2SessionOptions;
  readonly streams: StreamTable;
  readonly flow: ConnectionFlow;
  readonly pings: PingTracker;
  readonly peer: PeerSettingsInEffect;
  readonly writer: FrameWriter;
  /** Owns the streams the peer opens, and resets and gives back window for all of them. */
  readonly owner: StreamOwner;
  /** Whether we sent GOAWAY, after which streams the peer opens are refused. */
  goawaySent(): boolean;
  /** The peer's first SETTINGS arrived. */
  connected(): void;
  /** Server side: the peer opened `stream` with a request's `fields`. */
  streamOpened(stream: H2Stream, fields: HeaderList): void;
  wentAway(goaway: Goaway): void;
}

/**
 * What each received frame does to the connection and its streams (RFC 9113 sections 5 and 6).
 * Throws H2ConnectionError for what ends the connection; what ends only a stream resets it.
 */
export class IncomingFrames implements Omit<FrameSink, 'destroyed'> {
  private readonly decoder: HpackDecoder;
  private readonly limits = new PeerLimits();
  private settingsSeen = false;

  constructor(private readonly c: IncomingFramesContext) {
    this.decoder = new HpackDecoder(c.options.maxHeaderListSize);
  }

  /** Every frame but a header block. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsSeen && type !== FRAME.SETTINGS) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    switch (type) {
      case FRAME.DATA: return this.onData(flags, streamId, payload);
      case FRAME.PRIORITY:
        if (!priorityHasValidSize(streamId, payload)) this.streamError(streamId, H2_ERROR.FRAME_SIZE_ERROR);
        return;
      case FRAME.RST_STREAM: return this.onRstStream(streamId, decodeRstStream(streamId, payload));
      case FRAME.SETTINGS: return this.onSettings(flags, streamId, payload);
      case FRAME.PUSH_PROMISE: throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PUSH_PROMISE, though push is disabled');
      case FRAME.PING: return this.onPing(flags, streamId, payload);
      case FRAME.GOAWAY: return this.c.wentAway(decodeGoaway(streamId, payload));
      case FRAME.WINDOW_UPDATE: return this.onWindowUpdate(streamId, decodeWindowUpdate(streamId, payload));
      default: return; // Unknown frame types are ignored (RFC 9113 section 4.1).
    }
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole frame, padding included (RFC 9113 section 6.9.1).
    this.c.flow.received(payload.length);
    const data = unpaddedData(flags, payload);
    const stream = this.c.streams.get(streamId);
    if (stream === undefined) {
      this.c.streams.checkNotIdle(streamId, 'DATA');
      // A stream we already closed: its bytes still count against the connection's window.
      this.c.flow.credit(payload.length);
      return;
    }
    if (stream.remoteEnded) {
      this.c.flow.credit(payload.length);
      this.streamError(streamId, H2_ERROR.STREAM_CLOSED);
      return;
    }
    if (payload.length > stream.recvWindow) {
      this.c.flow.credit(payload.length);
      this.streamError(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
      return;
    }
    stream.recvWindow -= payload.length;
    if (data.length < payload.length) this.c.owner.consumed(stream, payload.length - data.length);
    stream.receive(data);
    if (flags & FLAG.END_STREAM) stream.remoteEnd();
  }

  /** A whole header block. */
  headerBlock(flags: number, streamId: number, block: Buffer): void {
    if (!this.settingsSeen) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    // Decoded even for a stream we refuse: the peer's encoder state moved on with it.
    const fields = this.decoder.decode(block);
    const endStream = (flags & FLAG.END_STREAM) !== 0;
    const { options, streams } = this.c;
    const stream = streams.get(streamId);
    if (stream !== undefined) {
      if (options.role === 'client' && !stream.responded) return this.onResponse(stream, fields, endStream);
      // Trailers: they must end the stream.
      if (!endStream) return this.streamError(streamId, H2_ERROR.PROTOCOL_ERROR);
      stream.remoteEnd();
      return;
    }
    if (options.role === 'client' || streams.isOurs(streamId)) {
      streams.checkNotIdle(streamId, 'HEADERS');
      return;
    }
    streams.takePeerId(streamId);
    if (this.c.goawaySent()) return this.streamError(streamId, H2_ERROR.REFUSED_STREAM);
    if (streams.size >= options.maxConcurrentStreams) {
      this.limits.streamRefused();
      return this.streamError(streamId, H2_ERROR.REFUSED_STREAM);
    }
    const opened = new H2Stream(this.c.owner, streamId, this.c.peer.streamWindow, options.streamWindow);
    streams.add(opened);
    this.c.streamOpened(opened, fields);
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

  private onRstStream(streamId: number, code: number): void {
    const stream = this.c.streams.get(streamId);
    if (stream === undefined) return this.c.streams.checkNotIdle(streamId, 'RST_STREAM');
    // Only a server starts work (a backend connection) for each stream a peer opens.
    if (this.c.options.role === 'server') this.limits.peerReset();
    stream.rstCode = code;
    stream.destroy(resetError(code, 'the tunnel peer reset the stream with'));
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    const settings = decodeSettingsFrame(flags, streamId, payload);
    if (settings === undefined) return;
    if (this.c.peer.apply(settings, this.c.streams.values())) this.c.flow.resumeBlocked();
    this.c.writer.control(FRAME.SETTINGS, FLAG.ACK, 0);
    if (!this.settingsSeen) {
      this.settingsSeen = true;
      this.c.connected();
    }
  }

  private onPing(flags: number, streamId: number, payload: Buffer): void {
    checkPing(streamId, payload);
    if ((flags & FLAG.ACK) === 0) this.c.writer.control(FRAME.PING, FLAG.ACK, 0, payload);
    else this.c.pings.acknowledged(payload);
  }

  private onWindowUpdate(streamId: number, increment: number): void {
    if (streamId === 0) return this.c.flow.sendWindowIncreased(increment);
    const stream = this.c.streams.get(streamId);
    if (stream === undefined) return this.c.streams.checkNotIdle(streamId, 'WINDOW_UPDATE');
    if (increment === 0) return this.streamError(streamId, H2_ERROR.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(streamId, H2_ERROR.FLOW_CONTROL_ERROR);
    this.c.flow.resume(stream);
  }

  /** Ends one stream with RST_STREAM `code`; the connection goes on. */
  private streamError(streamId: number, code: number): void {
    if (code !== H2_ERROR.REFUSED_STREAM) this.limits.streamError();
    const stream = this.c.streams.get(streamId);
    if (stream !== undefined) {
      this.c.owner.resetStream(stream, code);
      return;
    }
    this.c.writer.rstStream(streamId, code);
  }
}
