import { H2ConnectionError, H2_ERROR, MAX_STREAM_ID } from './constants.js';
import type { H2Stream } from './stream.js';

/**
 * A connection's open streams by id, and the ids it has used: a client's streams are odd, a server's
 * even, and each side opens its streams in increasing order, so an id above the last one used was
 * never opened (RFC 9113 section 5.1.1).
 */
export class StreamTable {
  private readonly byId = new Map<number, H2Stream>();
  private nextOwnId = 1;
  private lastPeer = 0;

  constructor(private readonly role: 'client' | 'server') {}

  get size(): number {
    return this.byId.size;
  }

  /** The highest id the peer opened, which a GOAWAY of ours names. */
  get lastPeerId(): number {
    return this.lastPeer;
  }

  /** Whether an id for a stream of ours is left. */
  get ownIdsLeft(): boolean {
    return this.nextOwnId < MAX_STREAM_ID;
  }

  get(id: number): H2Stream | undefined {
    return this.byId.get(id);
  }

  has(id: number): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<H2Stream> {
    return this.byId.values();
  }

  add(stream: H2Stream): void {
    this.byId.set(stream.id, stream);
  }

  /** Whether the stream was still here. */
  delete(id: number): boolean {
    return this.byId.delete(id);
  }

  clear(): void {
    this.byId.clear();
  }

  /** The id for the next stream we open. */
  takeOwnId(): number {
    const id = this.nextOwnId;
    this.nextOwnId += 2;
    return id;
  }

  /** The peer opens stream `id`; ids must grow, so a lower one names a stream already closed. */
  takePeerId(id: number): void {
    if (id <= this.lastPeer) throw new H2ConnectionError(H2_ERROR.STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    this.lastPeer = id;
  }

  /** Whether `id` is of a stream this side opens. */
  isOurs(id: number): boolean {
    return id % 2 === (this.role === 'client' ? 1 : 0);
  }

  /** A frame for a stream that was never opened is a connection error (RFC 9113 section 5.1). */
  checkNotIdle(id: number, what: string): void {
    const idle = this.isOurs(id) ? id >= this.nextOwnId : id > this.lastPeer;
    if (idle) throw new H2ConnectionError(H2_ERROR.PROTOCOL_ERROR, `${what} on idle stream ${id}`);
  }
}
