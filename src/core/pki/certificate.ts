/** A light X.509 parser: the fields Rampart's own checks need, straight from DER. */
import { content, contextTag, decodeOid, decodeTime, DerError, expectTag, readChildren, readWhole, TAG, whole } from './der.js';
import { OID } from './oids.js';

export interface ParsedExtension {
  readonly critical: boolean;
  readonly value: Buffer;
}

export interface ParsedCertificate {
  readonly der: Buffer;
  readonly tbs: Buffer;
  readonly serial: Buffer;
  readonly innerSignatureAlgorithm: string;
  readonly signatureAlgorithm: string;
  readonly signature: Buffer;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly spki: Buffer;
  readonly extensions: ReadonlyMap<string, ParsedExtension>;
  /** Extension OIDs in order, to detect duplicates. */
  readonly extensionOrder: readonly string[];
}

/** Parses a DER certificate. Throws DerError on malformed input. */
export function parseCertificate(der: Buffer): ParsedCertificate {
  const top = readWhole(der, TAG.SEQUENCE);
  const [tbsTlv, algTlv, sigTlv] = readChildren(der, top);
  const tbsSeq = expectTag(tbsTlv, TAG.SEQUENCE, 'tbsCertificate');
  const parts = readChildren(der, tbsSeq);
  let i = 0;
  if (parts[0]?.tag === contextTag(0, true)) i++;
  const serial = content(der, expectTag(parts[i++], TAG.INTEGER, 'serialNumber'));
  const innerAlg = expectTag(parts[i++], TAG.SEQUENCE, 'signature');
  const issuer = whole(der, expectTag(parts[i++], TAG.SEQUENCE, 'issuer'));
  const validity = expectTag(parts[i++], TAG.SEQUENCE, 'validity');
  const subject = whole(der, expectTag(parts[i++], TAG.SEQUENCE, 'subject'));
  const spki = whole(der, expectTag(parts[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo'));
  const [nbTlv, naTlv] = readChildren(der, validity);
  if (nbTlv === undefined || naTlv === undefined) throw new DerError('validity is incomplete');
  const extensions = new Map<string, ParsedExtension>();
  const extensionOrder: string[] = [];
  for (; i < parts.length; i++) {
    const part = parts[i] as (typeof parts)[number];
    if (part.tag !== contextTag(3, true)) continue;
    const [extsSeq] = readChildren(der, part);
    for (const ext of readChildren(der, expectTag(extsSeq, TAG.SEQUENCE, 'extensions'))) {
      const fields = readChildren(der, ext);
      const oid = decodeOid(content(der, expectTag(fields[0], TAG.OID, 'extnID')));
      const critical = fields.length === 3 && fields[1]?.tag === TAG.BOOLEAN && der[fields[1].contentStart] !== 0;
      const value = content(der, expectTag(fields[fields.length - 1], TAG.OCTET_STRING, 'extnValue'));
      extensionOrder.push(oid);
      extensions.set(oid, { critical, value });
    }
  }
  const [innerAlgOid] = readChildren(der, innerAlg);
  const [outerAlgOid] = readChildren(der, expectTag(algTlv, TAG.SEQUENCE, 'signatureAlgorithm'));
  const sigBits = content(der, expectTag(sigTlv, TAG.BIT_STRING, 'signatureValue'));
  return {
    der,
    tbs: whole(der, tbsSeq),
    serial,
    innerSignatureAlgorithm: decodeOid(content(der, expectTag(innerAlgOid, TAG.OID, 'signature OID'))),
    signatureAlgorithm: decodeOid(content(der, expectTag(outerAlgOid, TAG.OID, 'signatureAlgorithm OID'))),
    signature: sigBits.subarray(1),
    issuer,
    subject,
    notBefore: decodeTime(der, nbTlv),
    notAfter: decodeTime(der, naTlv),
    spki,
    extensions,
    extensionOrder,
  };
}

/** URI SANs of a parsed certificate. */
export function uriSans(cert: ParsedCertificate): string[] {
  const ext = cert.extensions.get(OID.subjectAltName);
  if (ext === undefined) return [];
  const top = readWhole(ext.value, TAG.SEQUENCE);
  return readChildren(ext.value, top)
    .filter((n) => n.tag === contextTag(6, false))
    .map((n) => content(ext.value, n).toString('latin1'));
}

/** Decoded basicConstraints: cA flag and optional pathLen. */
export function basicConstraints(cert: ParsedCertificate): { ca: boolean; pathLen?: number } | null {
  const ext = cert.extensions.get(OID.basicConstraints);
  if (ext === undefined) return null;
  const top = readWhole(ext.value, TAG.SEQUENCE);
  const fields = readChildren(ext.value, top);
  let ca = false;
  let pathLen: number | undefined;
  for (const f of fields) {
    if (f.tag === TAG.BOOLEAN) ca = ext.value[f.contentStart] !== 0;
    if (f.tag === TAG.INTEGER) pathLen = pathLenConstraint(content(ext.value, f));
  }
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

/**
 * pathLenConstraint is INTEGER (0..MAX). Read by hand: Buffer.readUIntBE throws a RangeError, not a
 * DerError, for an empty value or one over 6 bytes, and would read a negative one as unsigned.
 */
function pathLenConstraint(value: Buffer): number {
  if (value.length === 0) throw new DerError('empty pathLenConstraint');
  if (((value[0] as number) & 0x80) !== 0) throw new DerError('negative pathLenConstraint');
  if (value.length > 6) throw new DerError('pathLenConstraint out of range');
  return value.readUIntBE(0, value.length);
}

/** keyUsage bits that are set (RFC 5280 bit numbers). */
export function keyUsageBits(cert: ParsedCertificate): number[] {
  const ext = cert.extensions.get(OID.keyUsage);
  if (ext === undefined) return [];
  const bits = readWhole(ext.value, TAG.BIT_STRING);
  const bytes = ext.value.subarray(bits.contentStart + 1, bits.end);
  const out: number[] = [];
  bytes.forEach((byte, index) => {
    for (let b = 0; b < 8; b++) if (byte & (0x80 >> b)) out.push(index * 8 + b);
  });
  return out;
}

/** extKeyUsage OIDs. */
export function extKeyUsages(cert: ParsedCertificate): string[] {
  const ext = cert.extensions.get(OID.extKeyUsage);
  if (ext === undefined) return [];
  const top = readWhole(ext.value, TAG.SEQUENCE);
  return readChildren(ext.value, top).map((t) => decodeOid(content(ext.value, t)));
}

/** Key identifier from the SKI or AKI extension. */
export function keyIdFromExtension(cert: ParsedCertificate, which: 'ski' | 'aki'): Buffer | null {
  const ext = cert.extensions.get(which === 'ski' ? OID.subjectKeyIdentifier : OID.authorityKeyIdentifier);
  if (ext === undefined) return null;
  if (which === 'ski') return content(ext.value, readWhole(ext.value, TAG.OCTET_STRING));
  const top = readWhole(ext.value, TAG.SEQUENCE);
  const keyId = readChildren(ext.value, top).find((t) => t.tag === contextTag(0, false));
  return keyId === undefined ? null : content(ext.value, keyId);
}

/** Serial as lowercase hex without leading zero bytes. */
export function serialHex(cert: ParsedCertificate): string {
  let start = 0;
  while (start < cert.serial.length - 1 && cert.serial[start] === 0) start++;
  return cert.serial.subarray(start).toString('hex');
}
