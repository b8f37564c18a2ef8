/**
 * Coded answers for requests that never reach a route: bytes that are not HTTP/1.1, headers over
 * node's limit, a request that does not arrive in time (node's 'clientError'), and a URL that
 * cannot be routed (fastify's framework errors). Without these, such requests got node's bare
 * 400 or fastify's own JSON shape, the only answers outside the `{"error": {"code", "message"}}`
 * contract of DESIGN section 6.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../core/errors.js';
import { sendError, statusOf } from './error-handler.js';

interface FramingAnswer {
  readonly code: ErrorCode;
  readonly message: string;
}

function classify(err: Error & { code?: string }): FramingAnswer {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return { code: 'RAMPART_ERR_HEADERS_TOO_LARGE', message: 'request headers are over 16 KiB; a service-account token fits well within that' };
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { code: 'RAMPART_ERR_REQUEST_TIMEOUT', message: 'the request did not arrive in full in time' };
  }
  // The parser's code names the fault; its message could quote the peer's bytes, so it is not used.
  const parserCode = typeof err.code === 'string' && /^HPE_[A-Z_]+$/.test(err.code) ? ` (${err.code})` : '';
  return { code: 'RAMPART_ERR_BAD_REQUEST', message: `the request is not valid HTTP/1.1${parserCode}` };
}

/**
 * A 'clientError' listener for node:http and node:https servers (and fastify's
 * `clientErrorHandler`): answers once with a coded JSON body, then closes the connection,
 * as node itself would with its bare 400.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // A reset peer has gone; nothing can be sent.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // As node does: never write into the middle of a response already under way on this socket.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    const { code, message } = classify(err);
    const status = statusOf(code);
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** fastify's `frameworkErrors`: a URL that does not percent-decode, or a path segment too long to route. */
export function answerFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const message = error.code === 'FST_ERR_BAD_URL' ? 'the request URL is not valid: it does not percent-decode' : 'the request URL cannot be routed';
  return sendError(reply, 'RAMPART_ERR_BAD_REQUEST', message);
}
