/**
 * A fresh ECDSA P-256 key and a PKCS#10 request for every certificate (DESIGN section 7). The
 * request carries no subject and no SAN: the CA takes the identity from the caller's token.
 */
import { sign } from 'node:crypto';
import { bitString, contextTag, seq, smallInteger, tlv } from '../core/pki/der.js';
import { generateEcKeyPair, privateKeyPem, spkiDer } from '../core/pki/keys.js';
import { encodePem } from '../core/pki/pem.js';
import { encodeName, SIGNATURE_ALGORITHM_DER } from '../core/pki/profile.js';

/** A new private key (PKCS#8 PEM) and the CSR (PEM) signed with it. */
export interface KeyAndCsr {
  /** Never log it. */
  readonly keyPem: string;
  readonly csrPem: string;
}

const EMPTY_ATTRIBUTES = tlv(contextTag(0, true));

/** Generates an ECDSA P-256 key pair and a signed PKCS#10 CertificationRequest for it. */
export function createKeyAndCsr(): KeyAndCsr {
  const { privateKey, publicKey } = generateEcKeyPair('P-256');
  const info = seq(smallInteger(0), encodeName({}), spkiDer(publicKey), EMPTY_ATTRIBUTES);
  // node:crypto's ECDSA signatures are DER Ecdsa-Sig-Value, exactly what X.509 expects.
  const signature = sign('sha256', info, privateKey);
  const der = seq(info, SIGNATURE_ALGORITHM_DER['ecdsa-sha256'], bitString(signature));
  return { keyPem: privateKeyPem(privateKey), csrPem: encodePem('CERTIFICATE REQUEST', der) };
}
