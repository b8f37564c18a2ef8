import { FLAG, H2ConnectionError, H2_ERROR } from './constants.js';
import { decodeSettings, type PeerSettings } from './settings.js';

// Checks and reads of received frames' payloads (RFC 9113 section 6). Each throws H2ConnectionError
// for what makes the whole connection unusable; what only ends one stream is left to the session,
// which knows the stream.

/** A DATA payload without its padding. */
export function unpaddedData(flags: number, payload: Buffer): Buffer {
  if ((flags & FLAG.PADDED) === 0) return payload;
  const padding = payload.length > 0 ? (payload[0] as number) : 0;
  if (payload.length === 0 || padding >= payload.length) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'DATA padding exceeds the frame');
  return payload.subarray(1, payload.length - padding);
}

/** Whether a PRIORITY frame has its 5 bytes; a wrong size is only its stream's error. */
export function priorityHasValidSize(streamId: number, payload: Buffer): boolean {
  if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PRIORITY on stream 0');
  return payload.length === 5;
}

/** The error code of an RST_STREAM. */
export function decodeRstStream(streamId: number, payload: Buffer): number {
  if (streamId === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
  if (payload.length !== 4) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'RST_STREAM of the wrong size');
  return payload.readUInt32BE(0);
}

/** The settings the peer announced, or undefined for its ACK of ours. */
export function decodeSettingsFrame(flags: number, streamId: number, payload: Buffer): PeerSettings | undefined {
  if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'SETTINGS on a stream');
  if (flags & FLAG.ACK) {
    if (payload.length !== 0) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
    return undefined;
  }
  return decodeSettings(payload);
}

/** Checks a PING; its payload is used as it is, echoed or matched against ours. */
export function checkPing(streamId: number, payload: Buffer): void {
  if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'PING on a stream');
  if (payload.length !== 8) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'PING of the wrong size');
}

export interface Goaway {
  /** The highest of our streams the peer may have acted on; it drops later ones unprocessed. */
  readonly lastStreamId: number;
  readonly code: number;
}

export function decodeGoaway(streamId: number, payload: Buffer): Goaway {
  if (streamId !== 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'GOAWAY on a stream');
  if (payload.length < 8) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'GOAWAY too short');
  return { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
}

/** A WINDOW_UPDATE's increment. 0 is the connection's error on stream 0, only the stream's on others. */
export function decodeWindowUpdate(streamId: number, payload: Buffer): number {
  if (payload.length !== 4) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'WINDOW_UPDATE of the wrong size');
  const increment = payload.readUInt32BE(0) & 0x7fffffff;
  if (streamId === 0 && increment === 0) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
  return increment;
}
