import type { PeerCertificate } from 'node:tls';
import { isValidSpiffeId } from '../../core/identity.js';

/** The outcome of reading a peer's SPIFFE ID from its leaf certificate. */
export type PeerIdResult =
  | { readonly ok: true; readonly id: string }
  | { readonly ok: false; readonly reason: string };

/**
 * Splits Node's `subjectaltname` text ("URI:a, DNS:b"). Node JSON-quotes values that contain
 * separators, so a plain split on ", " could be fooled by a crafted SAN.
 */
function uriSans(altNames: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  while (i < altNames.length) {
    const colon = altNames.indexOf(':', i);
    if (colon === -1) return null;
    const type = altNames.slice(i, colon);
    let value: string;
    let next: number;
    if (altNames[colon + 1] === '"') {
      // Find the closing quote of the JSON string, skipping escaped characters.
      let j = colon + 2;
      while (j < altNames.length && altNames[j] !== '"') j += altNames[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(altNames.slice(colon + 1, j + 1)) as string;
      } catch {
        return null;
      }
      next = j + 1;
    } else {
      const comma = altNames.indexOf(', ', colon);
      next = comma === -1 ? altNames.length : comma;
      value = altNames.slice(colon + 1, next);
    }
    if (type === 'URI') out.push(value);
    if (next < altNames.length) {
      if (!altNames.startsWith(', ', next)) return null;
      next += 2;
    }
    i = next;
  }
  return out;
}

/**
 * Reads the SPIFFE ID of an X.509-SVID: exactly one URI SAN, and it must be a valid SPIFFE ID.
 * Chain verification happens in OpenSSL before this is called.
 */
export function peerSpiffeId(cert: PeerCertificate | Record<string, never> | null | undefined): PeerIdResult {
  if (cert === null || cert === undefined || !('subjectaltname' in cert) || typeof cert.subjectaltname !== 'string') {
    return { ok: false, reason: 'peer certificate has no subjectAltName' };
  }
  const uris = uriSans(cert.subjectaltname);
  if (uris === null) return { ok: false, reason: 'peer subjectAltName could not be parsed' };
  if (uris.length !== 1) return { ok: false, reason: `peer certificate must carry exactly one URI SAN, found ${uris.length}` };
  const id = uris[0] as string;
  if (!isValidSpiffeId(id)) return { ok: false, reason: 'peer URI SAN is not a valid SPIFFE ID' };
  return { ok: true, id };
}
