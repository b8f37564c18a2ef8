/**
 * Interfaces the adapters implement (state stores, authenticators) and the persisted CA state
 * they exchange with the core. Everything here is data and contracts: no I/O.
 */
import type { WorkloadIdentity } from './identity.js';

/** Lifecycle of a root in the trust bundle (DESIGN section 4). */
export type RootPhase = 'prepared' | 'active' | 'retiring';

/** A signing intermediate under a root. Times are milliseconds since the epoch. */
export interface IntermediateRecord {
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** Certificates between this intermediate and the root (plugged-in CAs with deeper chains). */
  readonly chainPems: readonly string[];
}

/** One root of the trust bundle with its signing intermediate. */
export interface RootRecord {
  /** SHA-256 of the root certificate DER, lowercase hex. */
  readonly fingerprint: string;
  /** Monotonic per trust domain; part of the root subject so successive roots never share a name. */
  readonly generation: number;
  readonly phase: RootPhase;
  readonly certPem: string;
  /** Null when the root key is held offline (plugged-in CA): its intermediate cannot be renewed here. */
  readonly keyPem: string | null;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly plugged: boolean;
  /** Bundle sequence at which this root entered the bundle (propagation is judged against it). */
  readonly addedAtSequence: number;
  readonly preparedAt: number;
  readonly activatedAt?: number;
  /** When this root's intermediate stopped signing (activate of its successor). */
  readonly signingEndedAt?: number;
  /**
   * Longest leaf TTL the CA could grant while this root signed, raised whenever a CA starts with a
   * higher --max-ttl; retire waits this long after signingEndedAt.
   */
  readonly maxLeafTtlMs?: number;
  readonly intermediate: IntermediateRecord;
}

/** Everything the CA persists. One atomic write per state change. */
export interface CaState {
  readonly schemaVersion: 1;
  readonly trustDomain: string;
  /** Grows on every bundle change; never decreases. */
  readonly sequence: number;
  readonly nextGeneration: number;
  readonly roots: readonly RootRecord[];
  readonly updatedAt: number;
}

/** A state snapshot with the store's opaque revision for compare-and-swap. */
export interface StoredState {
  readonly state: CaState;
  readonly revision: string;
}

/** A stored revision whose content does not decode as a CA state (hand-edited, truncated, emptied). */
export interface UnreadableState {
  /** The revision to compare-and-swap against when writing a good state over it. */
  readonly revision: string;
  /** Why it does not decode: field names and rules only, never content (the state holds keys). */
  readonly reason: string;
  /** It names a schema version above this build's: a newer Rampart wrote it, so it is not ours to overwrite. */
  readonly newerSchema: boolean;
}

/** Persistence of CA state (file store, Kubernetes Secret store). */
export interface StateStore {
  /** Reads the current state, or null when none was ever written. */
  load(): Promise<StoredState | null>;
  /**
   * Writes `next` only if the stored revision still equals `expectedRevision` (null: nothing
   * stored yet). Returns the new revision. Throws ConflictError RAMPART_ERR_STATE_CONFLICT when
   * another writer got there first.
   */
  save(next: CaState, expectedRevision: string | null): Promise<string>;
  /**
   * Subscribes to changes written by other processes/replicas; returns an unsubscribe function.
   * `null` means the stored state is gone (deleted, or its key removed) while this one runs;
   * `onUnreadable` hears of a change to content that does not decode as a CA state.
   */
  watch(listener: (stored: StoredState | null) => void, onUnreadable?: (unreadable: UnreadableState) => void): () => void;
  /** Makes the trust bundle PEM available to local consumers (the file store writes root-cert.pem). */
  publishBundle(pem: string): Promise<void>;
  /** Releases locks and watches. */
  close(): Promise<void>;
}

/** What a caller presented: a bearer token, a TLS client certificate chain, or both. */
export interface AuthenticationRequest {
  readonly bearerToken?: string;
  /** DER certificates the TLS client presented, leaf first. Not yet verified by anyone. */
  readonly clientCertChain?: readonly Buffer[];
  /** The address the request came from, for limits per caller (not an identity). */
  readonly peerAddress?: string;
}

/** A successful authentication. */
export interface AuthenticatedCaller {
  readonly identity: WorkloadIdentity;
  /** Name of the authenticator that vouched (`dev`, `jwks`, `kubernetes`, `svid`). */
  readonly authenticator: string;
}

/** One link of the authenticator chain. */
export interface Authenticator {
  readonly name: string;
  /**
   * Returns null when the request carries nothing this authenticator understands (no token, no
   * client certificate). Throws AuthenticationError when it does but is not valid, and
   * UnavailableError when the backing service cannot be reached.
   */
  authenticate(request: AuthenticationRequest): Promise<WorkloadIdentity | null>;
}
