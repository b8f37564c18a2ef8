/** The trust bundle: the roots a peer must trust, and its PEM, JSON and SPIFFE JWKS forms. */
import { createPublicKey, X509Certificate } from 'node:crypto';
import type { CaState, RootPhase } from '../ports.js';

export interface BundleRoot {
  readonly pem: string;
  readonly phase: RootPhase;
  readonly notAfter: string;
  readonly fingerprint: string;
}

export interface TrustBundle {
  readonly trustDomain: string;
  readonly sequence: number;
  readonly roots: readonly BundleRoot[];
}

/** The bundle a state implies: every root that is prepared, active or retiring. */
export function bundleFromState(state: CaState): TrustBundle {
  return {
    trustDomain: state.trustDomain,
    sequence: state.sequence,
    roots: state.roots.map((r) => ({ pem: r.certPem, phase: r.phase, notAfter: new Date(r.notAfter).toISOString(), fingerprint: r.fingerprint })),
  };
}

/** Concatenated root PEMs. */
export function bundleToPem(bundle: TrustBundle): string {
  return bundle.roots.map((r) => r.pem.trimEnd() + '\n').join('');
}

/** Root PEMs as a list. */
export function bundlePems(bundle: TrustBundle): string[] {
  return bundle.roots.map((r) => r.pem);
}

/** The JSON form: `{trustDomain, sequence, roots:[{pem, phase, notAfter, fingerprint}]}`. */
export function bundleToJson(bundle: TrustBundle): TrustBundle {
  return { trustDomain: bundle.trustDomain, sequence: bundle.sequence, roots: bundle.roots };
}

/** SPIFFE trust bundle (JWKS) with x509-svid keys. */
export function bundleToJwks(bundle: TrustBundle, refreshHintSeconds: number): Record<string, unknown> {
  const keys = bundle.roots.map((r) => {
    const cert = new X509Certificate(r.pem);
    const jwk = createPublicKey(r.pem).export({ format: 'jwk' }) as Record<string, unknown>;
    return { ...jwk, use: 'x509-svid', x5c: [cert.raw.toString('base64')] };
  });
  return { keys, spiffe_sequence: bundle.sequence, spiffe_refresh_hint: refreshHintSeconds };
}
