/**
 * A pool of fresh ECDSA P-256 keys with DER-built PKCS#10 requests (no subject, no SAN), made
 * with node:crypto and Rampart's own DER helpers, so load generators can pre-build thousands
 * of distinct CSRs quickly before their clock starts.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { bitString, contextTag, seq, smallInteger, tlv } from '../src/core/pki/der.js';
import { encodePem } from '../src/core/pki/pem.js';
import { encodeName, SIGNATURE_ALGORITHM_DER } from '../src/core/pki/profile.js';

const EMPTY_ATTRIBUTES = tlv(contextTag(0, true));
const EMPTY_NAME = encodeName({});

/** One new P-256 key and its CSR in PEM. */
export function makeDerCsr(): { readonly csrPem: string; readonly privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const info = seq(smallInteger(0), EMPTY_NAME, publicKey.export({ format: 'der', type: 'spki' }), EMPTY_ATTRIBUTES);
  const der = seq(info, SIGNATURE_ALGORITHM_DER['ecdsa-sha256'], bitString(sign('sha256', info, privateKey)));
  return { csrPem: encodePem('CERTIFICATE REQUEST', der), privateKey };
}

/** One new P-256 key's CSR in PEM (the private key is dropped: most load tests never use it). */
export function makeDerCsrPem(): string {
  return makeDerCsr().csrPem;
}

/** `count` distinct CSRs. */
export function makeCsrPool(count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(makeDerCsrPem());
  return out;
}
