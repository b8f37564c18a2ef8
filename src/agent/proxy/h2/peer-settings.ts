import { DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, H2ConnectionError, H2_ERROR, MAX_WINDOW } from './constants.js';
import type { PeerSettings } from './settings.js';
import type { H2Stream } from './stream.js';

/** What the peer's SETTINGS allow us now; until its first arrive, the protocol's defaults. */
export class PeerSettingsInEffect {
  /** The send window each new stream starts with. */
  streamWindow = DEFAULT_WINDOW;
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /** Streams of ours the peer lets us have open at once. */
  maxStreams = Infinity;

  /**
   * Takes a SETTINGS frame's values. A new initial window moves every open stream's send window by
   * the difference (RFC 9113 section 6.9.2); returns whether those windows grew.
   */
  apply(settings: PeerSettings, openStreams: Iterable<H2Stream>): boolean {
    if (settings.maxConcurrentStreams !== undefined) this.maxStreams = settings.maxConcurrentStreams;
    if (settings.maxFrameSize !== undefined) this.maxFrameSize = settings.maxFrameSize;
    if (settings.initialWindowSize === undefined) return false;
    const delta = settings.initialWindowSize - this.streamWindow;
    this.streamWindow = settings.initialWindowSize;
    for (const stream of openStreams) {
      stream.sendWindow += delta;
      if (stream.sendWindow > MAX_WINDOW) throw new H2ConnectionError(H2_ERROR.FLOW_CONTROL_ERROR, 'a stream window above 2^31-1');
    }
    return delta > 0;
  }
}
