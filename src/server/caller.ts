/** Extracts what a caller presented (bearer token, TLS client certificate chain) from a request. */
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { AuthenticationRequest } from '../core/ports.js';

interface PeerCert {
  raw: Buffer;
  issuerCertificate?: PeerCert;
}

/** DER of the certificates the TLS peer sent, leaf first. */
export function clientCertChain(request: FastifyRequest): Buffer[] {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return [];
  const leaf = socket.getPeerCertificate(true) as unknown as PeerCert | Record<string, never>;
  const out: Buffer[] = [];
  let cert: PeerCert | undefined = 'raw' in leaf ? (leaf as PeerCert) : undefined;
  const seen = new Set<string>();
  while (cert?.raw && out.length < 8) {
    const key = cert.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    out.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return out;
}

/** The token after `Bearer ` in the Authorization header, if any. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

export function authenticationRequest(request: FastifyRequest): AuthenticationRequest {
  const token = bearerToken(request);
  const chain = clientCertChain(request);
  return { ...(token !== undefined ? { bearerToken: token } : {}), ...(chain.length > 0 ? { clientCertChain: chain } : {}) };
}
