/**
 * The `svid` authenticator: a caller presenting a valid X.509-SVID of this trust domain as its
 * TLS client certificate is that workload (renewals, and hosts without tokens). The chain is
 * verified here, against the trust bundle as it is at the moment of the call, because the TLS
 * layer accepts any client certificate and the bundle changes during root rotation.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import { AuthenticationError } from '../core/errors.js';
import { identityFromSpiffeId, type WorkloadIdentity } from '../core/identity.js';
import type { AuthenticationRequest, Authenticator } from '../core/ports.js';
import { decodeSvidCert, validAt, type SvidCert } from './svid-cert.js';
import { trustedPath, UntrustedPathError, type TrustedPath } from './svid-path.js';

/** The trust anchors an SVID must chain to, read afresh on every call. */
export interface SvidTrustAnchors {
  readonly trustDomain: string;
  /** Root certificates in PEM (one or more per string). */
  readonly rootsPem: readonly string[];
}

/** Options for {@link createSvidAuthenticator}. */
export interface SvidAuthenticatorOptions {
  /** Current trust domain and roots; called on every authentication. */
  readonly trustAnchors: () => SvidTrustAnchors;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Most certificates accepted in the presented chain (default 5). */
  readonly maxChainLength?: number;
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
// Agents present the same SVID on every bundle long-poll and renewal: a chain that verified is
// trusted again without re-parsing and re-checking signatures (~0.3 ms), for at most five
// minutes, never past the expiry of any certificate on its path, and only while the roots are
// the ones it was verified against.
const VERIFIED_CACHE_ENTRIES = 10_000;
const VERIFIED_CACHE_MS = 5 * 60_000;
// A chain that failed is refused again from memory for a short while: a client on a kept-alive
// connection presents the same chain with every request, and each check parsed and verified it
// anew (outside QA). Short, so a certificate that was not yet valid is not held against it long.
const REFUSED_CACHE_MS = 10_000;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** What a remembered verdict on a chain was reached under. */
interface Remembered {
  readonly until: number;
  readonly rootsGeneration: number;
  readonly trustDomain: string;
}

function reject(detail: string): never {
  throw new AuthenticationError(`client certificate rejected: ${detail}`);
}

function span(cert: SvidCert): string {
  return `${new Date(cert.notBefore).toISOString()} .. ${new Date(cert.notAfter).toISOString()}`;
}

/** Checks the leaf's own profile and returns the identity it names. */
function leafIdentity(leaf: SvidCert, trustDomain: string, now: number): WorkloadIdentity {
  if (!validAt(leaf, now)) reject(`leaf is outside its validity (${span(leaf)})`);
  if (leaf.claimsCa) reject('leaf is a CA certificate');
  if (leaf.canSignCerts) reject('leaf may sign certificates (keyCertSign/cRLSign)');
  if (leaf.extKeyUsages.length > 0 && !leaf.extKeyUsages.includes(CLIENT_AUTH_OID)) reject('leaf extended key usage lacks clientAuth');
  if (leaf.uris.length !== 1) reject(`leaf has ${leaf.uris.length} URI SANs; an SVID has exactly one`);
  const spiffeId = leaf.uris[0] as string;
  let identity: WorkloadIdentity | null;
  try {
    identity = identityFromSpiffeId(spiffeId);
  } catch {
    return reject('leaf URI SAN is not a valid SPIFFE ID');
  }
  if (identity === null) reject(`leaf SPIFFE ID ${spiffeId} is not a workload ID (/ns/<ns>/sa/<sa>)`);
  if (identity.trustDomain !== trustDomain) reject(`leaf SPIFFE ID ${spiffeId} is not in trust domain ${trustDomain}`);
  return identity;
}

/** Verifies a presented chain (not cached): the identity it proves and how long that may be trusted. */
function verifyChain(presented: readonly Buffer[], trustDomain: string, roots: readonly SvidCert[], now: number, maxChain: number): { identity: WorkloadIdentity; until: number } {
  const certs = presented.map((der, index) => {
    try {
      return decodeSvidCert(der);
    } catch {
      return reject(`certificate ${index} is not a well-formed X.509 certificate`);
    }
  });
  const leaf = certs[0] as SvidCert;
  const identity = leafIdentity(leaf, trustDomain, now);
  let path: TrustedPath;
  try {
    path = trustedPath(leaf, certs.slice(1), roots, now, maxChain);
  } catch (err) {
    if (err instanceof UntrustedPathError) reject(err.message);
    throw err;
  }
  return { identity, until: Math.min(now + VERIFIED_CACHE_MS, path.pathNotAfter, path.root.notAfter) };
}

/**
 * Creates the `svid` authenticator. Returns null when no client certificate was presented,
 * throws AuthenticationError (detail for logs only) for any chain that is not a valid workload
 * SVID of the current trust domain.
 */
export function createSvidAuthenticator(options: SvidAuthenticatorOptions): Authenticator {
  const clock = options.clock ?? systemClock;
  const maxChain = options.maxChainLength ?? 5;
  // Roots change rarely; re-parse only when the PEM set differs from the last call's.
  let cachedKey = '';
  let cachedRoots: SvidCert[] = [];
  let rootsGeneration = 0;
  const verified = new LRUCache<string, Remembered & { identity: WorkloadIdentity }>({ max: VERIFIED_CACHE_ENTRIES });
  const refused = new LRUCache<string, Remembered & { error: AuthenticationError }>({ max: VERIFIED_CACHE_ENTRIES });
  const rootsFor = (pems: readonly string[]): SvidCert[] => {
    const key = pems.join('\n');
    if (key === cachedKey) return cachedRoots;
    rootsGeneration++;
    const roots: SvidCert[] = [];
    for (const block of key.match(PEM_CERT) ?? []) {
      try {
        const body = block.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, '');
        roots.push(decodeSvidCert(Buffer.from(body, 'base64')));
      } catch (err) {
        options.logger?.warn({ err: (err as Error).message }, 'svid authenticator: skipping a trust-bundle root that does not parse');
      }
    }
    cachedKey = key;
    cachedRoots = roots;
    return roots;
  };

  return {
    name: 'svid',
    async authenticate(request: AuthenticationRequest): Promise<WorkloadIdentity | null> {
      const presented = request.clientCertChain;
      if (presented === undefined || presented.length === 0) return null;
      if (presented.length > maxChain) reject(`chain of ${presented.length} certificates is longer than ${maxChain}`);
      const anchors = options.trustAnchors();
      const roots = rootsFor(anchors.rootsPem);
      const now = clock.now();
      const hash = createHash('sha256');
      for (const der of presented) hash.update(der);
      const chainKey = hash.digest('base64');
      // A remembered answer holds while its time lasts and the roots and trust domain are unchanged.
      const stillValid = (entry: Remembered | undefined): boolean => entry !== undefined && entry.rootsGeneration === rootsGeneration && entry.trustDomain === anchors.trustDomain && now < entry.until;
      const hit = verified.get(chainKey);
      if (hit !== undefined && stillValid(hit)) return hit.identity;
      const miss = refused.get(chainKey);
      if (miss !== undefined && stillValid(miss)) throw miss.error;
      try {
        const { identity, until } = verifyChain(presented, anchors.trustDomain, roots, now, maxChain);
        verified.set(chainKey, { identity, until, rootsGeneration, trustDomain: anchors.trustDomain });
        return identity;
      } catch (err) {
        if (err instanceof AuthenticationError) refused.set(chainKey, { error: err, until: now + REFUSED_CACHE_MS, rootsGeneration, trustDomain: anchors.trustDomain });
        throw err;
      }
    },
  };
}
