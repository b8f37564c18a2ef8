import { DEFAULT_MAX_FRAME_SIZE, H2ConnectionError, H2_ERROR, MAX_FRAME_SIZE_LIMIT, MAX_WINDOW, SETTING } from './constants.js';

/** The settings a peer announced that this side acts on; absent ones were not in the frame. */
export interface PeerSettings {
  maxConcurrentStreams?: number;
  initialWindowSize?: number;
  maxFrameSize?: number;
}

/** A SETTINGS payload for `pairs` of identifier and value. */
export function encodeSettings(pairs: ReadonlyArray<readonly [number, number]>): Buffer {
  const payload = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return payload;
}

/**
 * Reads a SETTINGS payload, refusing values RFC 9113 section 6.5.2 forbids. HEADER_TABLE_SIZE
 * needs nothing of us (our encoder never uses the dynamic table); unknown settings are ignored.
 */
export function decodeSettings(payload: Buffer): PeerSettings {
  if (payload.length % 6 !== 0) throw new H2ConnectionError(H2_ERROR.FRAME_SIZE_ERROR, 'SETTINGS of the wrong size');
  const settings: PeerSettings = {};
  for (let i = 0; i < payload.length; i += 6) {
    const id = payload.readUInt16BE(i);
    const value = payload.readUInt32BE(i + 2);
    if (id === SETTING.ENABLE_PUSH && value > 1) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, 'ENABLE_PUSH above 1');
    if (id === SETTING.MAX_CONCURRENT_STREAMS) settings.maxConcurrentStreams = value;
    if (id === SETTING.INITIAL_WINDOW_SIZE) {
      if (value > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE above 2^31-1');
      settings.initialWindowSize = value;
    }
    if (id === SETTING.MAX_FRAME_SIZE) {
      if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `MAX_FRAME_SIZE ${value} out of range`);
      settings.maxFrameSize = value;
    }
  }
  return settings;
}
