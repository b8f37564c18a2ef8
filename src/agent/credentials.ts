/**
 * The seam between the agent's certificate lifecycle (fetch, renew, write to disk) and its
 * mTLS proxy: the lifecycle publishes credentials, the proxy reads the current ones for every
 * new connection and listens for changes to rebuild its TLS contexts.
 */

/** One generation of this workload's X.509-SVID plus the trust bundle to verify peers with. */
export interface Credentials {
  /** This workload's SPIFFE ID (the leaf's URI SAN). */
  readonly spiffeId: string;
  /** PEM private key of the leaf. Never log it. */
  readonly keyPem: string;
  /** PEM chain: leaf first, then intermediates (not the root). */
  readonly certChainPem: string;
  /** PEM trusted roots used to verify peers. */
  readonly bundlePem: string;
  readonly trustDomain: string;
  /** Leaf NotAfter in milliseconds since the epoch. */
  readonly notAfter: number;
}

/** Where the proxy gets credentials from; implemented by the renewal loop and by file reload. */
export interface CredentialSource {
  /** The newest credentials, or null while none have been obtained yet. */
  current(): Credentials | null;
  /** Calls `listener` after every change; returns a function that unsubscribes. */
  onChange(listener: (c: Credentials) => void): () => void;
}

/** A credential source holding fixed values; `update` swaps them (tests, file reload). */
export class StaticCredentialSource implements CredentialSource {
  private value: Credentials | null;
  private readonly listeners = new Set<(c: Credentials) => void>();

  constructor(initial: Credentials | null = null) {
    this.value = initial;
  }

  current(): Credentials | null {
    return this.value;
  }

  onChange(listener: (c: Credentials) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Replaces the credentials and notifies listeners; a throwing listener does not stop the rest. */
  update(next: Credentials): void {
    this.value = next;
    for (const listener of [...this.listeners]) {
      try {
        listener(next);
      } catch {
        // A broken subscriber must not keep the others on stale credentials.
      }
    }
  }
}

/** True when the credentials exist and their leaf has not expired at `nowMs`. */
export function credentialsUsable(c: Credentials | null, nowMs: number): boolean {
  return c !== null && c.notAfter > nowMs;
}

/** Why credentials cannot be used at `nowMs` ("has no certificate yet", "certificate expired"), or null. */
export function refusalReason(c: Credentials | null, nowMs: number): 'has no certificate yet' | 'certificate expired' | null {
  if (c === null) return 'has no certificate yet';
  return c.notAfter > nowMs ? null : 'certificate expired';
}
