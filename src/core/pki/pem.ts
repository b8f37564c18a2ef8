/** PEM encoding and decoding (RFC 7468, strict enough for certificates, CSRs and keys). */

export interface PemBlock {
  readonly type: string;
  readonly der: Buffer;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n\t ]*?)-----END \1-----/g;

/** Decodes every PEM block in the text, in order. Text between blocks is ignored. */
export function decodePemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const body = (match[2] as string).replace(/\s+/g, '');
    if (body.length === 0 || body.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) continue;
    out.push({ type: match[1] as string, der: Buffer.from(body, 'base64') });
  }
  return out;
}

/** Encodes DER as a PEM block with 64-column lines. */
export function encodePem(type: string, der: Uint8Array): string {
  // A Buffer is encoded in place; Buffer.from would copy it first.
  const b64 = (Buffer.isBuffer(der) ? der : Buffer.from(der.buffer, der.byteOffset, der.byteLength)).toString('base64');
  let lines = '';
  for (let i = 0; i < b64.length; i += 64) lines += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${type}-----\n${lines}-----END ${type}-----\n`;
}

/** DER of every CERTIFICATE block in the text. */
export function decodeCertificates(text: string): Buffer[] {
  return decodePemBlocks(text)
    .filter((b) => b.type === 'CERTIFICATE')
    .map((b) => b.der);
}

export const certificatePem = (der: Uint8Array): string => encodePem('CERTIFICATE', der);
