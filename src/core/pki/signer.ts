/**
 * The signing hot path. Everything that is the same for every leaf a signer issues (issuer
 * name, algorithm, fixed extensions, authority key id) is encoded once; per request only the
 * serial, validity, public key, SAN and subject key id are filled in, and node:crypto signs the
 * result with a cached KeyObject.
 */
import { createPublicKey, randomBytes, randomFillSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { contextTag, headerSize, timeSize, writeHeader, writeTime, TAG } from './der.js';
import { keyIdentifier, spkiKeyIdentifier } from './keys.js';
import { OID } from './oids.js';
import { keyIdFromExtension, parseCertificate, type ParsedCertificate } from './certificate.js';
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  encodeCertificate,
  encodeTbs,
  subjectAltNameExtension,
  extKeyUsageExtension,
  KEY_USAGE,
  keyUsageExtension,
  SIGNATURE_ALGORITHM_DER,
  SIGNATURE_HASH_OF,
  subjectKeyIdentifierExtension,
  VERSION_V3,
  type SignatureAlgorithm,
} from './profile.js';
import { checkIssuedLeaf } from './verify.js';

/** What the leaf will certify: taken from a parsed CSR and the authenticated identity. */
export interface LeafRequest {
  readonly spki: Buffer;
  readonly subjectPublicKey: Buffer;
  readonly isRsa: boolean;
  readonly spiffeId: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface SignedLeaf {
  readonly der: Buffer;
  readonly serialHex: string;
}

const EMPTY_SUBJECT = Buffer.from([TAG.SEQUENCE, 0]);
const SERIAL_BYTES = 16;
/** A SHA-1 key identifier's length (RFC 5280 section 4.2.1.2, method 1), which `keyIdentifier` gives. */
const KEY_ID_BYTES = 20;
/** The subjectKeyIdentifier extension's bytes before its key id, taken from the generic encoder. */
const SKI_PREFIX = subjectKeyIdentifierExtension(Buffer.alloc(KEY_ID_BYTES)).subarray(0, -KEY_ID_BYTES);
/**
 * The SAN extension depends only on the SPIFFE ID, so it is encoded once per identity, not per
 * request. Bounded: a CA serving more identities than this re-encodes, never grows without limit.
 */
const SAN_CACHE_ENTRIES = 4096;

/** Signs workload leaves under one intermediate. Create once per intermediate, reuse per request. */
export class LeafSigner {
  readonly issuer: ParsedCertificate;
  readonly issuerDer: Buffer;
  readonly issuerPublicKey: KeyObject;
  readonly issuerKeyId: Buffer;
  private readonly key: KeyObject;
  private readonly algorithm: SignatureAlgorithm;
  private readonly hash: 'sha256' | 'sha384';
  private readonly head: Buffer;
  private readonly fixedExtensionsEc: Buffer;
  private readonly fixedExtensionsRsa: Buffer;
  private readonly serialScratch = Buffer.alloc(SERIAL_BYTES);
  // One RAND_bytes call per 256 serials: each call costs far more than the 16 bytes it returns.
  private readonly randomPool = Buffer.alloc(SERIAL_BYTES * 256);
  private randomOffset = this.randomPool.length;
  private readonly sanBySpiffeId = new Map<string, Buffer>();

  constructor(issuerCertDer: Buffer, issuerKey: KeyObject) {
    this.issuerDer = issuerCertDer;
    this.issuer = parseCertificate(issuerCertDer);
    this.key = issuerKey;
    this.issuerPublicKey = createPublicKey({ key: this.issuer.spki, format: 'der', type: 'spki' });
    // The AKI must equal the issuer's SKI as written, which a plugged-in CA may have derived differently.
    this.issuerKeyId = keyIdFromExtension(this.issuer, 'ski') ?? spkiKeyIdentifier(this.issuer.spki);
    const curve = issuerKey.asymmetricKeyDetails?.namedCurve;
    this.algorithm = curve === 'secp384r1' ? 'ecdsa-sha384' : 'ecdsa-sha256';
    this.hash = SIGNATURE_HASH_OF[this.algorithm];
    this.head = VERSION_V3;
    const shared = [
      extKeyUsageExtension([OID.serverAuth, OID.clientAuth]),
      basicConstraintsExtension(false),
      authorityKeyIdentifierExtension(this.issuerKeyId),
    ];
    this.fixedExtensionsEc = Buffer.concat([keyUsageExtension([KEY_USAGE.digitalSignature]), ...shared]);
    this.fixedExtensionsRsa = Buffer.concat([keyUsageExtension([KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment]), ...shared]);
  }

  /** Builds, signs and checks one leaf. Throws if the post-signing check fails. */
  sign(request: LeafRequest): SignedLeaf {
    const serial = this.serialScratch;
    this.nextSerialBytes(serial);
    // Positive, fixed-length, never a leading zero byte: 126 random bits.
    serial[0] = ((serial[0] as number) & 0x3f) | 0x40;
    const tbs = this.encodeTbs(request, serial);
    return this.signAndCheck(tbs, serial, request);
  }

  /**
   * Signs a leaf that also names DNS and IP SANs: the CA's own serving certificate. Not on the hot
   * path, so it uses the generic encoder; the same post-signing check applies.
   */
  signServing(request: LeafRequest & { readonly dnsNames: readonly string[]; readonly ipAddresses: readonly Buffer[] }): SignedLeaf {
    const serial = randomBytes(SERIAL_BYTES);
    serial[0] = ((serial[0] as number) & 0x3f) | 0x40;
    const tbs = encodeTbs({
      serial,
      signatureAlgorithm: this.algorithm,
      issuerName: this.issuer.subject,
      subjectName: EMPTY_SUBJECT,
      notBefore: request.notBefore,
      notAfter: request.notAfter,
      spki: request.spki,
      extensions: [
        subjectAltNameExtension({ uris: [request.spiffeId], dns: request.dnsNames, ips: request.ipAddresses }, true),
        request.isRsa ? this.fixedExtensionsRsa : this.fixedExtensionsEc,
        subjectKeyIdentifierExtension(keyIdentifier(request.subjectPublicKey)),
      ],
    });
    return this.signAndCheck(tbs, serial, request);
  }

  /** Signs a TBSCertificate and runs the post-signing check before anything leaves. */
  private signAndCheck(tbs: Buffer, serial: Buffer, request: LeafRequest): SignedLeaf {
    const signature = cryptoSign(this.hash, tbs, this.key);
    const der = encodeCertificate(tbs, this.algorithm, signature);
    checkIssuedLeaf(der, tbs, signature, {
      hash: this.hash,
      issuerPublicKey: this.issuerPublicKey,
      issuerSubject: this.issuer.subject,
      issuerKeyId: this.issuerKeyId,
      issuerNotAfter: this.issuer.notAfter,
      spiffeId: request.spiffeId,
      spki: request.spki,
      isRsa: request.isRsa,
      notBefore: request.notBefore,
      notAfter: request.notAfter,
    });
    return { der, serialHex: serial.toString('hex') };
  }

  private nextSerialBytes(into: Buffer): void {
    if (this.randomOffset + SERIAL_BYTES > this.randomPool.length) {
      randomFillSync(this.randomPool);
      this.randomOffset = 0;
    }
    this.randomPool.copy(into, 0, this.randomOffset, this.randomOffset + SERIAL_BYTES);
    // Never reuse pool bytes, even if a later refill failed half-way.
    this.randomPool.fill(0, this.randomOffset, this.randomOffset + SERIAL_BYTES);
    this.randomOffset += SERIAL_BYTES;
  }

  private subjectAltName(spiffeId: string): Buffer {
    let san = this.sanBySpiffeId.get(spiffeId);
    if (san === undefined) {
      san = subjectAltNameExtension({ uris: [spiffeId] }, true);
      if (this.sanBySpiffeId.size >= SAN_CACHE_ENTRIES) this.sanBySpiffeId.clear();
      this.sanBySpiffeId.set(spiffeId, san);
    }
    return san;
  }

  private encodeTbs(request: LeafRequest, serial: Buffer): Buffer {
    const san = this.subjectAltName(request.spiffeId);
    const keyId = keyIdentifier(request.subjectPublicKey);
    const fixed = request.isRsa ? this.fixedExtensionsRsa : this.fixedExtensionsEc;
    const extsLen = san.length + fixed.length + SKI_PREFIX.length + keyId.length;
    const extsSeqLen = headerSize(extsLen) + extsLen;
    const validityLen = timeSize(request.notBefore) + timeSize(request.notAfter);
    const sigAlg = SIGNATURE_ALGORITHM_DER[this.algorithm];
    const subjectName = this.issuer.subject;
    const bodyLen =
      this.head.length +
      2 + SERIAL_BYTES +
      sigAlg.length +
      subjectName.length +
      headerSize(validityLen) + validityLen +
      EMPTY_SUBJECT.length +
      request.spki.length +
      headerSize(extsSeqLen) + extsSeqLen;
    const out = Buffer.allocUnsafe(headerSize(bodyLen) + bodyLen);
    let o = writeHeader(out, 0, TAG.SEQUENCE, bodyLen);
    o += this.head.copy(out, o);
    out[o++] = TAG.INTEGER;
    out[o++] = SERIAL_BYTES;
    o += serial.copy(out, o);
    o += sigAlg.copy(out, o);
    o += subjectName.copy(out, o);
    o = writeHeader(out, o, TAG.SEQUENCE, validityLen);
    o = writeTime(out, o, request.notBefore);
    o = writeTime(out, o, request.notAfter);
    o += EMPTY_SUBJECT.copy(out, o);
    o += request.spki.copy(out, o);
    o = writeHeader(out, o, contextTag(3, true), extsSeqLen);
    o = writeHeader(out, o, TAG.SEQUENCE, extsLen);
    o += san.copy(out, o);
    o += fixed.copy(out, o);
    o += SKI_PREFIX.copy(out, o);
    o += keyId.copy(out, o);
    // allocUnsafe memory may hold old bytes: a length miscounted above must fail loudly here, not sign them.
    if (o !== out.length) throw new Error(`leaf template wrote ${o} of ${out.length} bytes`);
    return out;
  }
}
