/** Extracts what a caller presented (bearer token, TLS client certificate chain) from a request. */
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { BadRequestError } from '../core/errors.js';
import type { AuthenticationRequest } from '../core/ports.js';
import { peerChain } from '../tls/peer-chain.js';

/** DER of the certificates the TLS peer sent, leaf first. */
export function clientCertChain(request: FastifyRequest): readonly Buffer[] {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function') return [];
  return peerChain(socket as TLSSocket).certs;
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
