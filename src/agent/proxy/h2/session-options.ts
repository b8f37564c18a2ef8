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
