/**
 * Validation of a plugged-in CA (Istio `cacerts`: ca-cert.pem, ca-key.pem, cert-chain.pem,
 * root-cert.pem). The signing certificate must be a CA, its key must match, and the chain must
 * verify up to the root with the constraints a verifier applies (path length, key usage, trust
 * domain).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ConfigError, isRampartError } from '../errors.js';
import { certificateFingerprint } from '../pki/ca-certs.js';
import { basicConstraints, extKeyUsages, keyIdFromExtension, keyUsageBits, parseCertificate, uriSans } from '../pki/certificate.js';
import { spkiKeyIdentifier } from '../pki/keys.js';
import { decodeCertificates, certificatePem } from '../pki/pem.js';
import { LeafSigner } from '../pki/signer.js';
import { trustDomainId } from '../identity.js';
import { caCertificateProblems, chainToRoot, issuingPathProblems, keyMatchesCertificate } from '../pki/verify.js';
import type { PluggedCa } from './rotation.js';

export interface PluggedCaFiles {
  readonly caCertPem: string;
  readonly caKeyPem: string;
  readonly certChainPem: string;
  readonly rootCertPem: string;
}

function refuse(message: string): ConfigError {
  return new ConfigError('RAMPART_ERR_PLUGGED_CA_INVALID', `plugged-in CA refused: ${message}`);
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Refuses, naming the file, a certificate that OpenSSL cannot load or that Rampart's own DER
 * reader cannot read in every field the checks below and the signer use. Without this gate a
 * certificate OpenSSL takes but the stricter reader does not (a non-minimal length, a 7-byte
 * pathLen, a malformed SKI) threw a DerError or RangeError out of start-up, uncoded.
 */
function readable(der: Buffer, name: string): Buffer {
  try {
    new X509Certificate(der);
  } catch (err) {
    throw refuse(`${name} holds a certificate that cannot be loaded (${reason(err)})`);
  }
  try {
    const cert = parseCertificate(der);
    basicConstraints(cert);
    keyUsageBits(cert);
    extKeyUsages(cert);
    uriSans(cert);
    keyIdFromExtension(cert, 'ski');
    keyIdFromExtension(cert, 'aki');
    spkiKeyIdentifier(cert.spki);
  } catch (err) {
    if (isRampartError(err)) throw err;
    throw refuse(`${name} holds a certificate that is not well-formed DER (${reason(err)})`);
  }
  return der;
}

/** Checks the files and returns the root + intermediate records to store. */
export function validatePluggedCa(files: PluggedCaFiles, trustDomain: string, now: number): PluggedCa {
  const [caDer] = decodeCertificates(files.caCertPem);
  if (caDer === undefined) throw refuse('ca-cert.pem holds no certificate');
  const [rootDer, ...extraRoots] = decodeCertificates(files.rootCertPem);
  if (rootDer === undefined) throw refuse('root-cert.pem holds no certificate');
  if (extraRoots.length > 0) throw refuse('root-cert.pem must hold exactly one root certificate');
  readable(caDer, 'ca-cert.pem');
  readable(rootDer, 'root-cert.pem');
  const caPem = certificatePem(caDer);
  const rootPem = certificatePem(rootDer);
  let key: KeyObject;
  try {
    key = createPrivateKey(files.caKeyPem);
  } catch {
    throw refuse('ca-key.pem is not a readable private key');
  }
  if (key.asymmetricKeyType !== 'ec' || !['prime256v1', 'secp384r1'].includes(key.asymmetricKeyDetails?.namedCurve ?? '')) {
    throw refuse('ca-key.pem must be an ECDSA P-256 or P-384 key');
  }
  if (!keyMatchesCertificate(caPem, key)) throw refuse('ca-key.pem does not match the public key of ca-cert.pem');
  const problems = caCertificateProblems(caPem, now);
  if (problems.length > 0) throw refuse(`ca-cert.pem ${problems.join('; ')}`);
  const rootProblems = caCertificateProblems(rootPem, now);
  if (rootProblems.length > 0) throw refuse(`root-cert.pem ${rootProblems.join('; ')}`);
  const root = new X509Certificate(rootPem);
  // Only a self-signed certificate can anchor a bundle: peers do not accept partial chains.
  if (!root.checkIssued(root) || !root.verify(root.publicKey)) throw refuse('root-cert.pem is not a self-signed root certificate');
  const caFingerprint = certificateFingerprint(caPem);
  const rootFingerprint = certificateFingerprint(rootPem);
  const between = decodeCertificates(files.certChainPem)
    .map((der, i) => certificatePem(readable(der, `cert-chain.pem certificate ${i + 1}`)))
    .filter((pem) => {
      const fp = certificateFingerprint(pem);
      return fp !== caFingerprint && fp !== rootFingerprint;
    });
  if (caFingerprint === rootFingerprint) throw refuse('ca-cert.pem is the root itself; plug in an intermediate signed by the root');
  if (chainToRoot([caPem, ...between], [rootPem]) === null) throw refuse('ca-cert.pem and cert-chain.pem do not verify up to root-cert.pem');
  for (const [i, pem] of between.entries()) {
    const betweenProblems = caCertificateProblems(pem, now);
    if (betweenProblems.length > 0) throw refuse(`cert-chain.pem certificate ${i + 1} ${betweenProblems.join('; ')}`);
  }
  const pathProblems = issuingPathProblems([caPem, ...between, rootPem], trustDomainId(trustDomain));
  if (pathProblems.length > 0) throw refuse(pathProblems.join('; '));
  try {
    // What start-up does next with it: a signer that would fail there fails here, coded.
    new LeafSigner(caDer, key);
  } catch (err) {
    if (isRampartError(err)) throw err;
    throw refuse(`ca-cert.pem cannot sign leaves (${reason(err)})`);
  }
  const ca = new X509Certificate(caPem);
  // Leaves are clamped to this: a chain is only as long-lived as its shortest link.
  const notAfter = Math.min(...[caPem, ...between, rootPem].map((pem) => Date.parse(new X509Certificate(pem).validTo)));
  return {
    rootCertPem: rootPem,
    rootFingerprint,
    rootNotBefore: Date.parse(root.validFrom),
    rootNotAfter: Date.parse(root.validTo),
    intermediate: {
      certPem: caPem,
      keyPem: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
      notBefore: Date.parse(ca.validFrom),
      notAfter,
      chainPems: between,
    },
  };
}
