/**
 * Certificate profile building blocks: names, extensions and TBSCertificate assembly for the
 * root, the signing intermediate and the workload leaf (DESIGN section 3).
 */
import { bool, contextTag, encodeOid, encodeTime, headerSize, octetString, printable, seq, set, smallInteger, tlv, TAG, utf8, writeHeader } from './der.js';
import { OID } from './oids.js';

/** Signature algorithms Rampart signs with: ECDSA over the CA key's curve. */
export type SignatureAlgorithm = 'ecdsa-sha256' | 'ecdsa-sha384';

export const SIGNATURE_ALGORITHM_DER: Readonly<Record<SignatureAlgorithm, Buffer>> = {
  'ecdsa-sha256': seq(encodeOid(OID.ecdsaWithSha256)),
  'ecdsa-sha384': seq(encodeOid(OID.ecdsaWithSha384)),
};

export const SIGNATURE_HASH_OF: Readonly<Record<SignatureAlgorithm, 'sha256' | 'sha384'>> = {
  'ecdsa-sha256': 'sha256',
  'ecdsa-sha384': 'sha384',
};

/** Attributes of a distinguished name, in the order they are encoded. */
export interface NameAttributes {
  readonly organization?: string;
  readonly organizationalUnit?: string;
  readonly commonName?: string;
  readonly serialNumber?: string;
}

/** Encodes a Name; an empty attribute set gives the empty SEQUENCE leaves use. */
export function encodeName(attrs: NameAttributes): Buffer {
  const rdns: Buffer[] = [];
  const add = (oid: string, value: Buffer): void => {
    rdns.push(set(seq(encodeOid(oid), value)));
  };
  if (attrs.organization !== undefined) add(OID.organization, utf8(attrs.organization));
  if (attrs.organizationalUnit !== undefined) add(OID.organizationalUnit, utf8(attrs.organizationalUnit));
  if (attrs.commonName !== undefined) add(OID.commonName, utf8(attrs.commonName));
  if (attrs.serialNumber !== undefined) add(OID.serialNumber, printable(attrs.serialNumber));
  return seq(...rdns);
}

/** One Extension. */
export function extension(oid: string, critical: boolean, valueDer: Buffer): Buffer {
  return critical ? seq(encodeOid(oid), bool(true), octetString(valueDer)) : seq(encodeOid(oid), octetString(valueDer));
}

export function basicConstraintsExtension(ca: boolean, pathLen?: number): Buffer {
  const inner = ca ? (pathLen === undefined ? seq(bool(true)) : seq(bool(true), smallInteger(pathLen))) : seq();
  return extension(OID.basicConstraints, true, inner);
}

/** keyUsage bit numbers (RFC 5280 section 4.2.1.3). */
export const KEY_USAGE = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

export function keyUsageExtension(bits: ReadonlyArray<number>): Buffer {
  let value = 0;
  let highest = 0;
  for (const bit of bits) {
    value |= 0x80 >> bit;
    highest = Math.max(highest, bit);
  }
  // DER: the unused-bits count drops trailing zero bits of the last byte.
  let unused = 0;
  while (unused < 7 && (value & (1 << unused)) === 0) unused++;
  return extension(OID.keyUsage, true, tlv(TAG.BIT_STRING, Buffer.from([unused, value])));
}

export function extKeyUsageExtension(oids: readonly string[]): Buffer {
  return extension(OID.extKeyUsage, false, seq(...oids.map(encodeOid)));
}

/** subjectAltName with URIs, DNS names and IP addresses. Critical when the subject is empty. */
export function subjectAltNameExtension(names: { uris?: readonly string[]; dns?: readonly string[]; ips?: readonly Buffer[] }, critical: boolean): Buffer {
  const general: Buffer[] = [];
  for (const uri of names.uris ?? []) general.push(tlv(contextTag(6, false), Buffer.from(uri, 'latin1')));
  for (const dns of names.dns ?? []) general.push(tlv(contextTag(2, false), Buffer.from(dns, 'latin1')));
  for (const ip of names.ips ?? []) general.push(tlv(contextTag(7, false), ip));
  return extension(OID.subjectAltName, critical, seq(...general));
}

export function subjectKeyIdentifierExtension(keyId: Buffer): Buffer {
  return extension(OID.subjectKeyIdentifier, false, octetString(keyId));
}

export function authorityKeyIdentifierExtension(keyId: Buffer): Buffer {
  return extension(OID.authorityKeyIdentifier, false, seq(tlv(contextTag(0, false), keyId)));
}

/** version [0] EXPLICIT INTEGER 2 (v3). */
export const VERSION_V3 = tlv(contextTag(0, true), smallInteger(2));

/** Everything that goes into a TBSCertificate. */
export interface TbsFields {
  readonly serial: Buffer;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly issuerName: Buffer;
  readonly subjectName: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spki: Buffer;
  readonly extensions: readonly Buffer[];
}

/** Assembles a TBSCertificate from its fields (used for CA certificates; leaves use LeafTemplate). */
export function encodeTbs(fields: TbsFields): Buffer {
  return seq(
    VERSION_V3,
    tlv(TAG.INTEGER, fields.serial),
    SIGNATURE_ALGORITHM_DER[fields.signatureAlgorithm],
    fields.issuerName,
    seq(encodeTime(fields.notBefore), encodeTime(fields.notAfter)),
    fields.subjectName,
    fields.spki,
    tlv(contextTag(3, true), seq(...fields.extensions)),
  );
}

/** Wraps a TBSCertificate and its signature into a Certificate. */
export function encodeCertificate(tbs: Buffer, signatureAlgorithm: SignatureAlgorithm, signature: Buffer): Buffer {
  // Written into one buffer: this runs once per issued leaf.
  const algorithm = SIGNATURE_ALGORITHM_DER[signatureAlgorithm];
  const bitsLen = 1 + signature.length;
  const bodyLen = tbs.length + algorithm.length + headerSize(bitsLen) + bitsLen;
  const out = Buffer.allocUnsafe(headerSize(bodyLen) + bodyLen);
  let o = writeHeader(out, 0, TAG.SEQUENCE, bodyLen);
  o += tbs.copy(out, o);
  o += algorithm.copy(out, o);
  o = writeHeader(out, o, TAG.BIT_STRING, bitsLen);
  out[o++] = 0;
  signature.copy(out, o);
  return out;
}
