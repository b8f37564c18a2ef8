import { H2ConnectionError, H2_ERROR } from './constants.js';

/** Streams refused for the concurrency limit before the connection is ended (node's http2: 100). */
const MAX_REFUSED_STREAMS = 100;
/** Stream errors a peer may cause before the connection is ended (node's http2: 1,000 invalid frames). */
const MAX_STREAM_ERRORS = 1_000;
/** RST_STREAMs a peer may send for open streams at once, and per second after that (nghttp2's defaults). */
const RESET_BURST = 1_000;
const RESETS_PER_SECOND = 33;

function calm(message: string): H2ConnectionError {
  return new H2ConnectionError(H2_ERROR.ENHANCE_YOUR_CALM, message);
}

/**
 * What a peer may do wrong before its connection is ended with ENHANCE_YOUR_CALM, as node's
 * http2 module (nghttp2) did before the tunnel had its own stack. Each CONNECT stream the inbound
 * accepts starts a backend connection, so a peer that opens streams and resets them at once
 * (CVE-2023-44487, "rapid reset") would otherwise cost a connect per frame pair.
 */
export class PeerLimits {
  private refused = 0;
  private streamErrors = 0;
  private resetTokens = RESET_BURST;
  private refilledAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.refilledAt = now();
  }

  /** A stream was refused because the peer already had its maximum open. */
  streamRefused(): void {
    if (++this.refused > MAX_REFUSED_STREAMS) throw calm(`more than ${MAX_REFUSED_STREAMS} streams opened beyond the concurrency limit`);
  }

  /** The peer caused a stream error. */
  streamError(): void {
    if (++this.streamErrors > MAX_STREAM_ERRORS) throw calm(`more than ${MAX_STREAM_ERRORS} stream errors`);
  }

  /** The peer reset a stream that was still open. */
  peerReset(): void {
    const now = this.now();
    this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.refilledAt) / 1_000) * RESETS_PER_SECOND);
    this.refilledAt = now;
    if (this.resetTokens < 1) throw calm(`streams reset faster than ${RESETS_PER_SECOND} a second after a burst of ${RESET_BURST}`);
    this.resetTokens -= 1;
  }
}
