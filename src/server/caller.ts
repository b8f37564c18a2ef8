/** Extracts what a caller presented (bearer token, TLS client certificate chain) from a request. */
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { BadRequestError } from '../core/errors.js';
import type { AuthenticationRequest } from '../core/ports.js';

interface PeerCert {
  raw: Buffer;
  issuerCertificate?: PeerCert;
}

// getPeerCertificate(true) turns the whole chain into JS objects (~220 µs for an SVID and its
// intermediate), and agents send a request per bundle long-poll on a kept-alive connection. A
// connection's client certificate cannot change (TLS 1.3 has no renegotiation, and the API
// listener refuses it for TLS 1.2: server/tls.ts), so it is read once per connection.
const chainPerConnection = new WeakMap<object, Buffer[]>();

/** DER of the certificates the TLS peer sent, leaf first. */
export function clientCertChain(request: FastifyRequest): Buffer[] {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return [];
  const cached = chainPerConnection.get(socket);
  if (cached !== undefined) return cached;
  const chain = readPeerChain(socket as TLSSocket);
  chainPerConnection.set(socket, chain);
  return chain;
}

function readPeerChain(socket: TLSSocket): Buffer[] {
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

/**
 * How many Authorization headers came. Node keeps the first and drops the others, while a proxy
 * in front may act on the last, so the two would disagree about who the caller is (outside
 * security QA: a good token then a bad one was served as the first).
 */
function authorizationHeaderCount(request: FastifyRequest): number {
  const raw = request.raw.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).length === 13 && (raw[i] as string).toLowerCase() === 'authorization') count++;
  return count;
}

/** What the caller presented; a request with more than one Authorization header is refused (400). */
export function authenticationRequest(request: FastifyRequest): AuthenticationRequest {
  if (authorizationHeaderCount(request) > 1) throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', 'the request carries more than one Authorization header; send one');
  const token = bearerToken(request);
  const chain = clientCertChain(request);
  const peer = request.raw.socket.remoteAddress;
  return { ...(token !== undefined ? { bearerToken: token } : {}), ...(chain.length > 0 ? { clientCertChain: chain } : {}), ...(peer !== undefined ? { peerAddress: peer } : {}) };
}
