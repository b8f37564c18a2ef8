/**
 * Checks of certificates Rampart produced or was handed: the post-signing check every leaf passes
 * before it leaves the CA, and CA-certificate/chain checks for roots, intermediates and
 * plugged-in CAs.
 */
import { verify as cryptoVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { RampartError } from '../errors.js';
import { basicConstraints, extKeyUsages, keyIdFromExtension, keyUsageBits, parseCertificate, uriSans } from './certificate.js';
import { DerError } from './der.js';
import { spkiKeyIdentifier } from './keys.js';
import { KEY_USAGE } from './profile.js';
import { OID } from './oids.js';

/** What a freshly signed leaf must say. */
export interface LeafExpectation {
  readonly hash: 'sha256' | 'sha384';
  readonly issuerPublicKey: KeyObject;
  readonly issuerSubject: Buffer;
  readonly issuerKeyId: Buffer;
  readonly issuerNotAfter: number;
  readonly spiffeId: string;
  readonly spki: Buffer;
  readonly isRsa: boolean;
  readonly notBefore: number;
  readonly notAfter: number;
}

function fail(what: string): never {
  throw new RampartError('RAMPART_ERR_SIGNING_CHECK_FAILED', `issued certificate failed its post-signing check (${what}); it was not returned`);
}

/**
 * The post-signing check: the signature verifies with the issuer key and the DER, parsed back
 * independently of how it was built, carries exactly the leaf profile of DESIGN section 3.
 */
export function checkIssuedLeaf(der: Buffer, tbs: Buffer, signature: Buffer, expected: LeafExpectation): void {
  if (!cryptoVerify(expected.hash, tbs, expected.issuerPublicKey, signature)) fail('signature does not verify');
  let cert;
  try {
    cert = parseCertificate(der);
  } catch (err) {
    if (err instanceof DerError) fail(`unparseable: ${err.message}`);
    throw err;
  }
  if (cert.subject.length !== 2) fail('subject is not empty');
  if (!cert.issuer.equals(expected.issuerSubject)) fail('issuer name');
  if (!cert.spki.equals(expected.spki)) fail('public key');
  if (cert.notBefore !== Math.floor(expected.notBefore / 1000) * 1000 || cert.notAfter !== Math.floor(expected.notAfter / 1000) * 1000) fail('validity');
  if (cert.notAfter > expected.issuerNotAfter) fail('outlives its issuer');
  if ((cert.serial[0] ?? 0) & 0x80 || cert.serial.length < 8) fail('serial');
  if (cert.extensionOrder.length !== cert.extensions.size) fail('duplicate extension');
  const san = cert.extensions.get(OID.subjectAltName);
  const uris = uriSans(cert);
  if (san === undefined || !san.critical || uris.length !== 1 || uris[0] !== expected.spiffeId) fail('subjectAltName');
  const ku = cert.extensions.get(OID.keyUsage);
  const bits = keyUsageBits(cert);
  const wantBits = expected.isRsa ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment] : [KEY_USAGE.digitalSignature];
  if (ku === undefined || !ku.critical || bits.join() !== wantBits.join()) fail('keyUsage');
  const eku = extKeyUsages(cert);
  if (eku.length !== 2 || !eku.includes(OID.serverAuth) || !eku.includes(OID.clientAuth)) fail('extKeyUsage');
  const bc = basicConstraints(cert);
  if (bc === null || bc.ca || !cert.extensions.get(OID.basicConstraints)?.critical) fail('basicConstraints');
  const aki = keyIdFromExtension(cert, 'aki');
  if (aki === null || !aki.equals(expected.issuerKeyId)) fail('authorityKeyIdentifier');
  const ski = keyIdFromExtension(cert, 'ski');
  if (ski === null || !ski.equals(spkiKeyIdentifier(expected.spki))) fail('subjectKeyIdentifier');
}

/** Problems found in a CA certificate; empty when it is a usable signing CA. */
export function caCertificateProblems(certPem: string, now: number): string[] {
  const problems: string[] = [];
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch {
    return ['not a parseable X.509 certificate'];
  }
  const parsed = parseCertificate(x509.raw);
  const bc = basicConstraints(parsed);
  if (bc === null || !bc.ca) problems.push('basicConstraints cA is not true: the certificate is not a CA');
  const ku = keyUsageBits(parsed);
  if (parsed.extensions.has(OID.keyUsage) && !ku.includes(KEY_USAGE.keyCertSign)) problems.push('keyUsage lacks keyCertSign');
  if (parsed.notAfter <= now) problems.push(`expired at ${new Date(parsed.notAfter).toISOString()}`);
  if (parsed.notBefore > now + 60_000) problems.push(`not valid before ${new Date(parsed.notBefore).toISOString()}`);
  return problems;
}

/**
 * Problems a verifier would find in the CA path a plugged-in CA signs under: `caPems` runs from the
 * issuing CA up to the root. Each one limits how many CAs may sit below it (pathLenConstraint),
 * and one that restricts extendedKeyUsage must allow both serverAuth and clientAuth, or its
 * leaves fail as one end of mutual TLS. The issuing CA may name only this trust domain.
 */
export function issuingPathProblems(caPems: readonly string[], trustDomainId: string): string[] {
  const problems: string[] = [];
  caPems.forEach((pem, below) => {
    const cert = parseCertificate(new X509Certificate(pem).raw);
    const name = below === 0 ? 'ca-cert.pem' : below === caPems.length - 1 ? 'root-cert.pem' : `cert-chain.pem certificate ${below}`;
    const pathLen = basicConstraints(cert)?.pathLen;
    if (pathLen !== undefined && pathLen < below) problems.push(`${name} allows ${pathLen} CA certificate(s) below it (pathLenConstraint) but ${below} sit below it`);
    if (cert.extensions.has(OID.extKeyUsage)) {
      const eku = extKeyUsages(cert);
      if (!eku.includes(OID.anyExtendedKeyUsage) && !(eku.includes(OID.serverAuth) && eku.includes(OID.clientAuth))) {
        problems.push(`${name} restricts extendedKeyUsage without both serverAuth and clientAuth, so its leaves could not serve both ends of mutual TLS`);
      }
    }
    if (below === 0) {
      const uris = uriSans(cert);
      if (uris.length > 0 && !uris.includes(trustDomainId)) problems.push(`ca-cert.pem names ${uris.join(', ')} but this CA's trust domain is ${trustDomainId}`);
    }
  });
  return problems;
}

/** True when `certPem`'s public key is the public half of `keyObject`. */
export function keyMatchesCertificate(certPem: string, privateKey: KeyObject): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(privateKey);
  } catch {
    return false;
  }
}

/**
 * Verifies that `chainPems` (leaf-most first, ending below the root) links up to one of `rootPems`
 * by issuer name and signature. Returns the matching root PEM, or null.
 */
export function chainToRoot(chainPems: readonly string[], rootPems: readonly string[]): string | null {
  const chain = chainPems.map((p) => new X509Certificate(p));
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i] as X509Certificate;
    const parent = chain[i + 1] as X509Certificate;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) return null;
  }
  const top = chain[chain.length - 1];
  if (top === undefined) return null;
  for (const rootPem of rootPems) {
    const root = new X509Certificate(rootPem);
    if (top.fingerprint256 === root.fingerprint256) return rootPem;
    if (top.checkIssued(root) && top.verify(root.publicKey)) return rootPem;
  }
  return null;
}
