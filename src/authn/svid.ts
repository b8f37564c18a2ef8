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
import { decodeSvidCert, signedBy, validAt, type SvidCert } from './svid-cert.js';

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
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

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

/** A CA may sign only as deep as its pathLen allows: `below` CA certificates under it. */
function checkCaAt(ca: SvidCert, below: number, what: string, now: number): void {
  if (!ca.isCa) reject(`a certificate in the chain is signed by a non-CA certificate (${what})`);
  if (!validAt(ca, now)) reject(`${what} is outside its validity (${span(ca)})`);
  if (ca.pathLen !== undefined && below > ca.pathLen) reject(`${what} pathLen ${ca.pathLen} forbids ${below} CA certificates below it`);
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
  const verified = new LRUCache<string, { identity: WorkloadIdentity; until: number; rootsGeneration: number; trustDomain: string }>({ max: VERIFIED_CACHE_ENTRIES });
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
      const hit = verified.get(chainKey);
      if (hit !== undefined && hit.rootsGeneration === rootsGeneration && hit.trustDomain === anchors.trustDomain && now < hit.until) return hit.identity;
      const certs = presented.map((der, index) => {
        try {
          return decodeSvidCert(der);
        } catch {
          return reject(`certificate ${index} is not a well-formed X.509 certificate`);
        }
      });
      const leaf = certs[0] as SvidCert;
      const identity = leafIdentity(leaf, anchors.trustDomain, now);

      // Walk leaf -> presented intermediates -> a current root, each link signature-checked.
      const unused = certs.slice(1);
      let current = leaf;
      let pathNotAfter = leaf.notAfter;
      for (let intermediates = 0; intermediates <= maxChain; intermediates++) {
        const rootCandidates = roots.filter((r) => signedBy(current, r));
        const root = rootCandidates.find((r) => validAt(r, now));
        if (root !== undefined) {
          checkCaAt(root, intermediates, 'root', now);
          const until = Math.min(now + VERIFIED_CACHE_MS, pathNotAfter, root.notAfter);
          verified.set(chainKey, { identity, until, rootsGeneration, trustDomain: anchors.trustDomain });
          return identity;
        }
        const index = unused.findIndex((c) => signedBy(current, c));
        if (index === -1) {
          reject(rootCandidates.length > 0 ? 'chain ends at a root outside its validity' : 'chain does not lead to a root of the current trust bundle');
        }
        const next = unused.splice(index, 1)[0] as SvidCert;
        // `intermediates` CA certificates lie between `next` and the leaf.
        checkCaAt(next, intermediates, 'intermediate', now);
        pathNotAfter = Math.min(pathNotAfter, next.notAfter);
        current = next;
      }
      return reject('chain is too long');
    },
  };
}
