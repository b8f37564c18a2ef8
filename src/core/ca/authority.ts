/**
 * Issuance: turns an authenticated caller and a CSR into an X.509-SVID under the current signer.
 * The signing context is swapped as a whole when the state changes, so one request never mixes
 * an intermediate from one generation with a bundle from another.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Clock } from '../clock.js';
import { isRampartError, StateError, UnavailableError } from '../errors.js';
import { workloadSpiffeId } from '../identity.js';
import { checkCsrIdentity, parseCsrPem } from '../pki/csr.js';
import { certificatePem } from '../pki/pem.js';
import { LeafSigner } from '../pki/signer.js';
import type { AuthenticatedCaller, CaState } from '../ports.js';
import { grantTtlMs, leafValidity, type TtlPolicy } from './policy.js';
import { activeRoot } from './rotation.js';
import { bundleFromState, bundlePems, type TrustBundle } from './trust-bundle.js';

/** Everything a request needs from one consistent CA state. */
export interface SigningContext {
  readonly signer: LeafSigner;
  /** Intermediate first, then any certificates up to (not including) the root. */
  readonly chainPems: readonly string[];
  readonly bundle: TrustBundle;
  readonly bundlePems: readonly string[];
  readonly activeRootFingerprint: string;
}

/**
 * Loads one PEM of the stored state. The codec checks only the PEM shape, so a state whose base64
 * was damaged (a changed character, a lost line) decodes; loading it then failed with OpenSSL's
 * own uncoded error, at start-up or, for a root outside the signing path, on every JWKS bundle
 * request. OpenSSL's message names no key material.
 */
function loadStored<T>(what: string, load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (isRampartError(err)) throw err;
    throw new StateError('RAMPART_ERR_STATE_CORRUPT', `the stored CA state's ${what} cannot be read (${err instanceof Error ? err.message : String(err)}); restore the state from a backup`, { cause: err });
  }
}

/** Checks that every root certificate and root key of the state loads and matches its fingerprint. */
function checkStoredRoots(state: CaState): void {
  for (const r of state.roots) {
    const name = `root ${r.fingerprint.slice(0, 16)}`;
    const cert = loadStored(`${name} certificate`, () => new X509Certificate(r.certPem));
    loadStored(`${name} certificate's public key`, () => cert.publicKey);
    // Rotation, the bundle's JSON and the admin API go by fingerprint; another certificate under it
    // would be trusted, listed and retired under the wrong name.
    if (cert.fingerprint256.replace(/:/g, '').toLowerCase() !== r.fingerprint) {
      throw new StateError('RAMPART_ERR_STATE_CORRUPT', `the stored CA state's ${name} certificate is not the certificate its fingerprint names; restore the state from a backup`);
    }
    const keyPem = r.keyPem;
    if (keyPem !== null) loadStored(`${name} key`, () => createPrivateKey(keyPem));
  }
}

/** Builds the signing context for a state, or throws when it has no usable active root. */
export function signingContextFor(state: CaState): SigningContext {
  const root = activeRoot(state);
  if (!root) throw new UnavailableError('RAMPART_ERR_NOT_READY', 'the CA state has no active root');
  checkStoredRoots(state);
  const name = `active root ${root.fingerprint.slice(0, 16)}'s intermediate`;
  const intermediateCert = loadStored(`${name} certificate`, () => new X509Certificate(root.intermediate.certPem));
  const intermediateKey = loadStored(`${name} key`, () => createPrivateKey(root.intermediate.keyPem));
  root.intermediate.chainPems.forEach((pem, i) => loadStored(`${name} chain certificate ${i + 1}`, () => new X509Certificate(pem)));
  // A key stored beside another intermediate's certificate would fail every post-signing check;
  // say what is wrong with the state once, instead of answering each request with that failure.
  if (!intermediateCert.checkPrivateKey(intermediateKey)) {
    throw new StateError('RAMPART_ERR_STATE_CORRUPT', `the active root ${root.fingerprint.slice(0, 16)}'s intermediate key does not belong to its certificate; restore the state from a backup`);
  }
  const signer = loadStored(`${name} certificate`, () => new LeafSigner(intermediateCert.raw, intermediateKey));
  const bundle = bundleFromState(state);
  return {
    signer,
    chainPems: [root.intermediate.certPem, ...root.intermediate.chainPems],
    bundle,
    bundlePems: bundlePems(bundle),
    activeRootFingerprint: root.fingerprint,
  };
}

export interface IssueRequest {
  readonly csrPem: string;
  readonly ttlSeconds?: unknown;
  readonly caller: AuthenticatedCaller;
}

export interface IssuedCertificate {
  readonly spiffeId: string;
  readonly certChain: readonly string[];
  readonly trustBundle: readonly string[];
  readonly bundleSequence: number;
  readonly serialHex: string;
  readonly notBefore: number;
  readonly expiresAt: number;
  readonly grantedTtlSeconds: number;
  readonly keyType: string;
}

/** Issues one SVID. Pure apart from randomness and the clock. */
export function issueCertificate(context: SigningContext, policy: TtlPolicy, clock: Clock, request: IssueRequest): IssuedCertificate {
  const spiffeId = workloadSpiffeId(request.caller.identity);
  const ttlMs = grantTtlMs(policy, request.ttlSeconds);
  const csr = parseCsrPem(request.csrPem);
  checkCsrIdentity(csr, spiffeId);
  const now = clock.now();
  const issuerNotAfter = context.signer.issuer.notAfter;
  if (issuerNotAfter <= now) throw new UnavailableError('RAMPART_ERR_NOT_READY', 'the signing intermediate has expired: a CA renews its own before that, so this is a plugged-in CA whose files (--plugged-ca) must be replaced, or a clock far off', { retryAfterSeconds: 5 });
  const { notBefore, notAfter } = leafValidity(now, ttlMs, issuerNotAfter);
  const leaf = context.signer.sign({ spki: csr.spki, subjectPublicKey: csr.subjectPublicKey, isRsa: csr.isRsa, spiffeId, notBefore, notAfter });
  const expiresAt = Math.floor(notAfter / 1000) * 1000;
  return {
    spiffeId,
    certChain: [certificatePem(leaf.der), ...context.chainPems],
    trustBundle: context.bundlePems,
    bundleSequence: context.bundle.sequence,
    serialHex: leaf.serialHex,
    notBefore: Math.floor(notBefore / 1000) * 1000,
    expiresAt,
    // The certificate holds whole seconds; counted from the same truncated "now", the TTL granted is
    // exactly what was asked (or the clamp), never a second short because of the request's milliseconds.
    grantedTtlSeconds: Math.max(0, Math.ceil((expiresAt - now) / 1000)),
    keyType: csr.keyType,
  };
}
