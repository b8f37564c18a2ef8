/**
 * PKCS#10 parsing and validation. A CSR is parsed and checked exactly once per request; the
 * result carries the raw SPKI bytes the signer copies straight into the certificate template.
 */
import { BadRequestError, ForbiddenError, type ErrorCode } from '../errors.js';
import { isValidSpiffeId } from '../identity.js';
import { content, contextTag, decodeOid, DerError, expectTag, readChildren, readTlv, readWhole, TAG, whole, type Tlv } from './der.js';
import { checkSignatureWithSpki, inspectSpki, type KeyType } from './keys.js';
import { OID, SIGNATURE_HASH } from './oids.js';

/** A CSR that parsed and whose signature verified. */
export interface ParsedCsr {
  readonly spki: Buffer;
  readonly keyType: KeyType;
  readonly isRsa: boolean;
  /** RFC 5280 key identifier input: the subjectPublicKey bits. */
  readonly subjectPublicKey: Buffer;
  /** URI SANs requested (0 or 1 after validation). */
  readonly uriSans: readonly string[];
}

const BEGIN = '-----BEGIN ';
const DASHES = '-----';
const LABEL = /^[A-Z0-9 ]+$/;
const MAX_LABEL = 64;
const CSR_LABELS: ReadonlySet<string> = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function bad(code: ErrorCode, message: string): BadRequestError {
  return new BadRequestError(code, message);
}

const notOneBlock = (why: string): BadRequestError => bad('RAMPART_ERR_CSR_NOT_PEM', `csr must be one PEM block "-----BEGIN CERTIFICATE REQUEST-----"; ${why}`);

/**
 * Extracts the DER of the one `CERTIFICATE REQUEST` PEM block in the text. Text before and after
 * the block is ignored, as RFC 7468 section 2 asks of parsers: `openssl req -text` writes a dump
 * of the request above it. A second block is refused, so a key pasted with the CSR is never
 * mistaken for it. This runs on every signing request, so it finds the boundaries with indexOf
 * and only the base64 body is checked by regular expression.
 */
export function csrDerFromPem(pem: string): Buffer {
  const begin = pem.indexOf(BEGIN);
  if (begin === -1) throw notOneBlock('no "-----BEGIN" line found');
  const labelStart = begin + BEGIN.length;
  const labelEnd = pem.indexOf(DASHES, labelStart);
  // Labels are short words (RFC 7468 section 4); a long one is not echoed back in the error.
  const type = labelEnd === -1 || labelEnd - labelStart > MAX_LABEL ? '' : pem.slice(labelStart, labelEnd);
  let bodyStart = labelEnd + DASHES.length;
  // RFC 7468 section 3 allows spaces and tabs after the encapsulation boundary (*WSP eol).
  while (pem[bodyStart] === ' ' || pem[bodyStart] === '\t') bodyStart += 1;
  if (pem[bodyStart] === '\r') bodyStart += 1;
  if (!LABEL.test(type) || pem[bodyStart] !== '\n') throw notOneBlock('its "-----BEGIN" line is malformed');
  const endLine = `-----END ${type}-----`;
  const end = pem.indexOf(endLine, bodyStart);
  if (end === -1) throw notOneBlock(`the "-----BEGIN ${type}-----" block has no "${endLine}" line`);
  if (pem.indexOf(BEGIN, end + endLine.length) !== -1) throw notOneBlock('this text holds more than one PEM block; send only the CSR');
  if (!CSR_LABELS.has(type)) throw bad('RAMPART_ERR_CSR_WRONG_PEM_TYPE', `csr PEM block is "${type}"; expected "CERTIFICATE REQUEST"`);
  const body = strictBase64Body(pem, bodyStart, end);
  if (body === null) throw bad('RAMPART_ERR_CSR_NOT_PEM', 'csr PEM body is not valid base64');
  return Buffer.from(body, 'base64');
}

/**
 * The base64 text of `text[start, end)` for node's decoder, or null when it is not strict base64
 * with whitespace between characters: the alphabet, then at most two "=" ending it, a length
 * (whitespace aside) that is a multiple of 4, at least one character. One pass over the characters
 * with no copy when the whitespace is ASCII, which node's decoder skips itself: this runs on every
 * signing request. Other whitespace is stripped first, since node reads only the low byte of a
 * character and would take U+202F for "/".
 */
function strictBase64Body(text: string, start: number, end: number): string | null {
  let count = 0;
  let padding = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f) {
      if (padding > 0) return null;
      count++;
    } else if (c === 0x3d) {
      padding++;
      count++;
    } else if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) {
      continue;
    } else if (c > 0x7f) {
      const body = text.slice(start, end).replace(/\s+/g, '');
      return body.length % 4 === 0 && BASE64.test(body) ? body : null;
    } else {
      return null;
    }
  }
  return count > padding && padding <= 2 && count % 4 === 0 ? text.slice(start, end) : null;
}

interface RequestedExtensions {
  uriSans: string[];
  otherSanKinds: string[];
  wantsCa: boolean;
  unsupported: string[];
}

const SAN_KIND: Record<number, string> = { 0: 'otherName', 1: 'email', 2: 'DNS', 3: 'x400Address', 4: 'directoryName', 5: 'ediPartyName', 7: 'IP', 8: 'registeredID' };

function readSan(der: Buffer, value: Buffer, into: RequestedExtensions): void {
  const names = readWhole(value, TAG.SEQUENCE);
  for (const name of readChildren(value, names)) {
    const kind = name.tag & 0x1f;
    if (name.tag === contextTag(6, false)) {
      into.uriSans.push(content(value, name).toString('latin1'));
    } else {
      into.otherSanKinds.push(SAN_KIND[kind] ?? `tag ${kind}`);
    }
  }
  void der;
}

function readBasicConstraints(value: Buffer): boolean {
  const top = readWhole(value, TAG.SEQUENCE);
  const [first] = readChildren(value, top);
  return first?.tag === TAG.BOOLEAN && (value[first.contentStart] ?? 0) !== 0;
}

function readKeyUsageWantsCa(value: Buffer): boolean {
  const bits = readWhole(value, TAG.BIT_STRING);
  const first = value[bits.contentStart + 1] ?? 0;
  // keyCertSign is bit 5, cRLSign bit 6 (counting from the most significant bit of the first byte).
  return (first & 0x04) !== 0 || (first & 0x02) !== 0;
}

function readExtensionRequest(der: Buffer, attrValues: Tlv, into: RequestedExtensions): void {
  for (const extsSeq of readChildren(der, attrValues)) {
    expectTag(extsSeq, TAG.SEQUENCE, 'requested extensions');
    for (const ext of readChildren(der, extsSeq)) {
      const parts = readChildren(der, expectTag(ext, TAG.SEQUENCE, 'extension'));
      const oid = decodeOid(content(der, expectTag(parts[0], TAG.OID, 'extension OID')));
      const valueTlv = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extension value');
      const value = content(der, valueTlv);
      switch (oid) {
        case OID.subjectAltName:
          readSan(der, value, into);
          break;
        case OID.basicConstraints:
          if (readBasicConstraints(value)) into.wantsCa = true;
          break;
        case OID.keyUsage:
          if (readKeyUsageWantsCa(value)) into.wantsCa = true;
          break;
        case OID.extKeyUsage:
        case OID.subjectKeyIdentifier:
          // Harmless: the CA sets its own values.
          break;
        default:
          into.unsupported.push(oid);
      }
    }
  }
}

/**
 * Parses a DER CSR, verifies its self-signature and checks its key and requested extensions.
 * Identity is not checked here (see `checkCsrIdentity`): the CSR never decides who you are.
 */
export function parseCsr(der: Buffer): ParsedCsr {
  let spki: Buffer;
  let info: Buffer;
  let sigAlgOid: string;
  let signature: Buffer;
  const requested: RequestedExtensions = { uriSans: [], otherSanKinds: [], wantsCa: false, unsupported: [] };
  try {
    const top = readWhole(der, TAG.SEQUENCE);
    const requestFields = readChildren(der, top);
    // Only certificationRequestInfo is signed: anything appended after the signature, or in the
    // algorithm's parameters, would ride along unverified in a request that still "verifies".
    if (requestFields.length !== 3) throw new DerError('a CertificationRequest holds exactly certificationRequestInfo, signatureAlgorithm and signature');
    const [infoTlv, algTlv, sigTlv] = requestFields;
    const infoSeq = expectTag(infoTlv, TAG.SEQUENCE, 'certificationRequestInfo');
    info = whole(der, infoSeq);
    const infoFields = readChildren(der, infoSeq);
    if (infoFields.length > 4) throw new DerError('certificationRequestInfo holds more than version, subject, subjectPKInfo and attributes');
    const [versionTlv, subjectTlv, spkiTlv, attrsTlv] = infoFields;
    const version = content(der, expectTag(versionTlv, TAG.INTEGER, 'version'));
    if (version.length !== 1 || version[0] !== 0) throw new DerError('CSR version must be 1 (0)');
    expectTag(subjectTlv, TAG.SEQUENCE, 'subject');
    spki = whole(der, expectTag(spkiTlv, TAG.SEQUENCE, 'subjectPKInfo'));
    if (attrsTlv !== undefined) {
      expectTag(attrsTlv, contextTag(0, true), 'attributes');
      for (const attr of readChildren(der, attrsTlv)) {
        const [oidTlv, valuesTlv] = readChildren(der, expectTag(attr, TAG.SEQUENCE, 'attribute'));
        const oid = decodeOid(content(der, expectTag(oidTlv, TAG.OID, 'attribute type')));
        const values = expectTag(valuesTlv, TAG.SET, 'attribute values');
        if (oid === OID.extensionRequest) readExtensionRequest(der, values, requested);
      }
    }
    const algSeq = expectTag(algTlv, TAG.SEQUENCE, 'signatureAlgorithm');
    const [algOidTlv, algParams, ...algExtra] = readChildren(der, algSeq);
    sigAlgOid = decodeOid(content(der, expectTag(algOidTlv, TAG.OID, 'signature algorithm')));
    // ECDSA leaves the parameters out (RFC 5758), RSA PKCS#1 v1.5 puts NULL there (RFC 4055);
    // nothing else is a parameter of the algorithms accepted. An algorithm not accepted at all
    // (RSASSA-PSS, which needs parameters) is refused below as unsupported, not as malformed.
    if (SIGNATURE_HASH[sigAlgOid] !== undefined && (algExtra.length > 0 || (algParams !== undefined && (algParams.tag !== TAG.NULL || algParams.end !== algParams.contentStart)))) {
      throw new DerError('signatureAlgorithm parameters must be absent or NULL');
    }
    const sigBits = content(der, expectTag(sigTlv, TAG.BIT_STRING, 'signature'));
    if (sigBits.length < 2) throw new DerError('signature BIT STRING is empty');
    if (sigBits[0] !== 0) throw new DerError('signature BIT STRING has unused bits');
    signature = sigBits.subarray(1);
    readTlv(der, 0);
  } catch (err) {
    if (err instanceof DerError) throw bad('RAMPART_ERR_CSR_MALFORMED', `csr is not a valid PKCS#10 request: ${err.message}`);
    throw err;
  }

  let keyInfo;
  try {
    keyInfo = inspectSpki(spki);
  } catch (err) {
    if (err instanceof DerError) throw bad('RAMPART_ERR_CSR_MALFORMED', `csr public key is malformed: ${err.message}`);
    throw err;
  }
  if (keyInfo.keyType === null) {
    throw bad('RAMPART_ERR_CSR_UNSUPPORTED_KEY', `the CSR key (${keyInfo.description}) is not supported; use ECDSA P-256 (recommended), P-384, or RSA 2048/3072/4096`);
  }
  const hash = SIGNATURE_HASH[sigAlgOid];
  const rsaAlg = sigAlgOid.startsWith('1.2.840.113549.1.1.');
  if (hash === undefined || rsaAlg !== keyInfo.isRsa) {
    throw bad('RAMPART_ERR_CSR_UNSUPPORTED_SIGNATURE_ALGORITHM', `csr signature algorithm ${sigAlgOid} is not supported for a ${keyInfo.description} key`);
  }
  const check = checkSignatureWithSpki(spki, keyInfo, hash, info, signature);
  // OpenSSL refuses an EC point off its curve here, and nothing else that passed inspectSpki.
  if (check === 'invalid-key') throw bad('RAMPART_ERR_CSR_MALFORMED', `csr public key (${keyInfo.description}) is not a valid key: an EC point must lie on its curve`);
  if (check === 'bad-signature') throw bad('RAMPART_ERR_CSR_BAD_SIGNATURE', 'csr signature does not verify with its own public key');

  if (requested.wantsCa) throw bad('RAMPART_ERR_CSR_CA_REQUESTED', 'csr asks for CA powers (cA=true, keyCertSign or cRLSign); workload certificates are never CAs');
  if (requested.otherSanKinds.length > 0) {
    throw bad('RAMPART_ERR_CSR_FORBIDDEN_SAN', `csr asks for ${[...new Set(requested.otherSanKinds)].join(', ')} SANs; only the caller's own SPIFFE ID (or no SAN) is allowed`);
  }
  if (requested.uriSans.length > 1) throw bad('RAMPART_ERR_CSR_MULTIPLE_URI_SANS', `csr carries ${requested.uriSans.length} URI SANs; at most one (the caller's SPIFFE ID) is allowed`);
  if (requested.unsupported.length > 0) {
    throw bad('RAMPART_ERR_CSR_UNSUPPORTED_EXTENSION', `csr requests unsupported extension(s) ${requested.unsupported.join(', ')}; send only subjectAltName`);
  }
  return { spki, keyType: keyInfo.keyType, isRsa: keyInfo.isRsa, subjectPublicKey: keyInfo.subjectPublicKey, uriSans: requested.uriSans };
}

/** Refuses a CSR whose URI SAN names anyone but the authenticated caller. */
export function checkCsrIdentity(csr: ParsedCsr, callerSpiffeId: string): void {
  const [requested] = csr.uriSans;
  if (requested === undefined || requested === callerSpiffeId) return;
  const shown = requested.length > 120 ? `${requested.slice(0, 120)}…` : requested;
  // A SAN that is no SPIFFE ID at all is a malformed request, not a claim to someone else's identity.
  if (!isValidSpiffeId(requested)) {
    throw new BadRequestError('RAMPART_ERR_SPIFFE_ID_INVALID', `csr URI SAN "${shown}" is not a valid SPIFFE ID; omit the SAN or use the caller's own ID "${callerSpiffeId}"`);
  }
  throw new ForbiddenError('RAMPART_ERR_CSR_IDENTITY_MISMATCH', `csr asks for "${shown}" but the caller is authenticated as "${callerSpiffeId}"; omit the SAN or use the caller's own ID`);
}

/** Parses a PEM CSR (see `parseCsr`). */
export function parseCsrPem(pem: string): ParsedCsr {
  return parseCsr(csrDerFromPem(pem));
}
