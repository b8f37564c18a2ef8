/** Public-key inspection and key generation for the key types Rampart supports. */
import { createPublicKey, generateKeyPairSync, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { digest } from '../digest.js';
import { content, decodeOid, DerError, expectTag, readChildren, readTlv, readWhole, TAG, type Tlv } from './der.js';
import { EcPointError, verifyWithEcPoint } from './ec-point-import.js';
import { OID } from './oids.js';

/** The key types a CSR may carry (DESIGN section 3). */
export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

/** What a SubjectPublicKeyInfo says about its key. */
export interface SpkiInfo {
  /** Supported key type, or null with `description` saying what it was. */
  readonly keyType: KeyType | null;
  readonly description: string;
  readonly isRsa: boolean;
  /** The BIT STRING content without its unused-bits byte: input to the SKI hash. */
  readonly subjectPublicKey: Buffer;
}

/** A DER INTEGER that is positive and minimally encoded, as RFC 8017 requires of n and e. */
function positiveInteger(der: Buffer, tlv: Tlv | undefined, what: string): Buffer {
  const value = content(der, expectTag(tlv, TAG.INTEGER, what));
  if (value.length === 0 || ((value[0] as number) & 0x80) !== 0) throw new DerError(`${what} is not a positive INTEGER`);
  if (value.length > 1 && value[0] === 0 && ((value[1] as number) & 0x80) === 0) throw new DerError(`${what} has a non-minimal encoding`);
  return value;
}

/**
 * Why an RSA public exponent is unusable, or null. e = 1 makes a "signature" anyone can forge
 * (the padded hash itself), so a CSR with it proves no possession of any key, and Go refuses
 * exponents outside 2..2^31-1 when it verifies; an even e has no RSA private key at all.
 */
function rsaExponentProblem(exponent: Buffer): string | null {
  const start = exponent[0] === 0 ? 1 : 0;
  const bytes = exponent.length - start;
  if (bytes > 4 || (bytes === 4 && ((exponent[start] as number) & 0x80) !== 0)) return 'a public exponent of 2^31 or more';
  const e = exponent.subarray(start).reduce((value, byte) => value * 256 + byte, 0);
  if (e < 3) return `public exponent ${e}`;
  if (e % 2 === 0) return `an even public exponent (${e})`;
  return null;
}

function rsaKeyFacts(publicKey: Buffer): { modulusBits: number; exponentProblem: string | null } {
  const rsaKey = readWhole(publicKey, TAG.SEQUENCE);
  const fields = readChildren(publicKey, rsaKey);
  if (fields.length !== 2) throw new DerError('RSAPublicKey must hold exactly a modulus and an exponent');
  const mod = positiveInteger(publicKey, fields[0], 'RSA modulus');
  const exponentProblem = rsaExponentProblem(positiveInteger(publicKey, fields[1], 'RSA exponent'));
  if (mod.length === 1 && mod[0] === 0) return { modulusBits: 0, exponentProblem };
  const start = mod[0] === 0 ? 1 : 0;
  return { modulusBits: (mod.length - start - 1) * 8 + (32 - Math.clz32(mod[start] as number)), exponentProblem };
}

/**
 * Why an EC point is not one Rampart certifies, or null: only the uncompressed form (0x04, X, Y)
 * of the curve's size. RFC 5480 forbids the hybrid forms, and Go cannot load a certificate with
 * a compressed point (outside security QA saw both issued).
 */
function ecPointProblem(point: Buffer, coordinateBytes: number): string | null {
  if (point[0] === 0x04 && point.length === 1 + 2 * coordinateBytes) return null;
  if (point[0] === 0x02 || point[0] === 0x03) return 'a compressed point (only uncompressed points are taken)';
  return 'a point that is not in uncompressed form of the curve\'s size';
}

/**
 * Inspects a DER SubjectPublicKeyInfo. Throws DerError when it is not well formed. A CSR's SPKI is
 * copied byte for byte into the certificate the CA signs, so every element is checked, not only
 * those read: a trailing element, junk algorithm parameters or a padded RSA integer would put a
 * certificate into the world that OpenSSL and Go refuse to load.
 */
export function inspectSpki(spki: Buffer): SpkiInfo {
  const top = readWhole(spki, TAG.SEQUENCE);
  const spkiFields = readChildren(spki, top);
  if (spkiFields.length !== 2) throw new DerError('SubjectPublicKeyInfo must hold exactly an algorithm and a key');
  const [algTlv, keyTlv] = spkiFields;
  const alg = expectTag(algTlv, TAG.SEQUENCE, 'SPKI algorithm');
  const bits = expectTag(keyTlv, TAG.BIT_STRING, 'SPKI public key');
  const algFields = readChildren(spki, alg);
  if (algFields.length > 2) throw new DerError('SPKI algorithm has more than an OID and its parameters');
  const [algOidTlv, paramsTlv] = algFields;
  const algOid = decodeOid(content(spki, expectTag(algOidTlv, TAG.OID, 'key algorithm')));
  const bitContent = content(spki, bits);
  if (bitContent.length < 2) throw new DerError('public key BIT STRING is empty');
  if (bitContent[0] !== 0) throw new DerError('public key BIT STRING has unused bits');
  const subjectPublicKey = bitContent.subarray(1);
  if (algOid === OID.ecPublicKey) {
    if (paramsTlv?.tag !== TAG.OID) return { keyType: null, description: 'EC key without a named curve', isRsa: false, subjectPublicKey };
    const curve = decodeOid(content(spki, paramsTlv));
    const named = curve === OID.prime256v1 ? { keyType: 'ec-p256' as const, description: 'ECDSA P-256', size: 32 } : curve === OID.secp384r1 ? { keyType: 'ec-p384' as const, description: 'ECDSA P-384', size: 48 } : null;
    if (named !== null) {
      const problem = ecPointProblem(subjectPublicKey, named.size);
      return { keyType: problem === null ? named.keyType : null, description: problem === null ? named.description : `${named.description} with ${problem}`, isRsa: false, subjectPublicKey };
    }
    return { keyType: null, description: `EC key on unsupported curve ${curve}`, isRsa: false, subjectPublicKey };
  }
  if (algOid === OID.rsaEncryption) {
    // RFC 3279 2.3.1: the parameters MUST be NULL. The key is copied into the certificate as it
    // came, and Go's x509.ParseCertificate refuses one without them (outside QA): so does the CA.
    if (paramsTlv === undefined || paramsTlv.tag !== TAG.NULL || paramsTlv.end !== paramsTlv.contentStart) throw new DerError('rsaEncryption parameters must be NULL (RFC 3279)');
    const { modulusBits, exponentProblem } = rsaKeyFacts(subjectPublicKey);
    const sized = modulusBits === 2048 ? 'rsa-2048' : modulusBits === 3072 ? 'rsa-3072' : modulusBits === 4096 ? 'rsa-4096' : null;
    if (exponentProblem !== null) return { keyType: null, description: `RSA ${modulusBits}-bit with ${exponentProblem}`, isRsa: true, subjectPublicKey };
    return { keyType: sized, description: `RSA ${modulusBits}-bit`, isRsa: true, subjectPublicKey };
  }
  if (algOid === OID.dsa) return { keyType: null, description: 'DSA', isRsa: false, subjectPublicKey };
  return { keyType: null, description: `key algorithm ${algOid}`, isRsa: false, subjectPublicKey };
}

/** RFC 5280 method 1 key identifier: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(subjectPublicKey: Uint8Array): Buffer {
  return digest('sha1', subjectPublicKey);
}

/** Key identifier of a DER SPKI. */
export function spkiKeyIdentifier(spki: Buffer): Buffer {
  const top = readTlv(spki, 0);
  const [, keyTlv] = readChildren(spki, top);
  return keyIdentifier(content(spki, expectTag(keyTlv, TAG.BIT_STRING, 'SPKI public key')).subarray(1));
}

/** Generates an ECDSA key pair on the named curve. */
export function generateEcKeyPair(curve: 'P-256' | 'P-384' = 'P-256'): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: curve === 'P-256' ? 'prime256v1' : 'secp384r1' });
}

/** PKCS#8 PEM of a private key. */
export function privateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** DER SPKI of a public (or private) key. */
export function spkiDer(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' });
}

function unsignedMagnitude(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  return value.subarray(start);
}

/**
 * A KeyObject for an inspected SPKI that is not an EC key of a supported curve. RSA keys go
 * through JWK rather than the DER, because OpenSSL 3.0's generic decoder costs several times
 * more than the direct import, and every certificate request carries a fresh key.
 */
function publicKeyFromSpki(spki: Buffer, info: SpkiInfo): KeyObject {
  const point = info.subjectPublicKey;
  if (info.isRsa) {
    const top = readWhole(point, TAG.SEQUENCE);
    const [n, e] = readChildren(point, top);
    return createPublicKey({
      key: {
        kty: 'RSA',
        n: unsignedMagnitude(content(point, expectTag(n, TAG.INTEGER, 'RSA modulus'))).toString('base64url'),
        e: unsignedMagnitude(content(point, expectTag(e, TAG.INTEGER, 'RSA exponent'))).toString('base64url'),
      },
      format: 'jwk',
    });
  }
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}

/** What checking a signature with a key seen once found. */
export type SignatureCheck = 'verified' | 'bad-signature' | 'invalid-key';

/**
 * Checks `signature` over `data` with the key of an inspected SPKI, a key used for this check
 * only (a CSR's). 'invalid-key' when OpenSSL refuses the key itself, such as an EC point off its
 * curve. EC points go through `verifyWithEcPoint`, which frees each key when the next one comes
 * rather than in a GC pause.
 */
export function checkSignatureWithSpki(spki: Buffer, info: SpkiInfo, hash: string, data: Buffer, signature: Buffer): SignatureCheck {
  const curve = info.keyType === 'ec-p256' ? 'P-256' : info.keyType === 'ec-p384' ? 'P-384' : null;
  // inspectSpki gave an EC key a keyType only for an uncompressed point of its curve's size.
  if (curve !== null) {
    try {
      return verifyWithEcPoint(curve, info.subjectPublicKey, hash, data, signature) ? 'verified' : 'bad-signature';
    } catch (err) {
      if (err instanceof EcPointError) return 'invalid-key';
      throw err;
    }
  }
  let key: KeyObject;
  try {
    key = publicKeyFromSpki(spki, info);
  } catch {
    return 'invalid-key';
  }
  try {
    return cryptoVerify(hash, data, key, signature) ? 'verified' : 'bad-signature';
  } catch {
    return 'bad-signature';
  }
}
