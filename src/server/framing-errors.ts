/**
 * Coded answers for requests that never reach a route: bytes that are not HTTP/1.1, headers over
 * node's limit, a request that does not arrive in time (node's 'clientError'), and a URL that
 * cannot be routed (fastify's framework errors). Without these, such requests got node's bare
 * 400 or fastify's own JSON shape, the only answers outside the `{"error": {"code", "message"}}`
 * contract of DESIGN section 6.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../core/errors.js';
import { sendError, statusOf } from './error-handler.js';
import { isValidHostValue } from './host-value.js';
import { closeLingering } from './lingering-close.js';

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

/** A whole HTTP/1.1 answer that closes the connection, for sockets node:http has let go of. */
function rawAnswer(status: number, body: string): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/**
 * A 'connect' listener for node:http and node:https servers: a CONNECT request. Without one node
 * closes the connection without a word; neither listener is a proxy, so it gets a coded 400.
 */
export function answerConnect(_req: IncomingMessage, socket: Duplex): void {
  const code: ErrorCode = 'RAMPART_ERR_BAD_REQUEST';
  const body = JSON.stringify({ error: { code, message: 'CONNECT is not served: this is not a proxy' } });
  socket.on('error', () => {
    // A peer gone before the answer; nothing to tell it.
  });
  closeLingering(socket, rawAnswer(statusOf(code), body));
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
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean; writableEnded?: boolean } | null })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    const { code, message } = classify(err);
    const status = statusOf(code);
    const body = JSON.stringify({ error: { code, message } });
    // Ended, never destroyed right after the write: over TLS a write queues behind output not yet
    // flushed (the "100 Continue" of an Expect: 100-continue request), and destroy() discarded
    // both. Nor destroyed once flushed: the rest of the request (a body behind headers over the
    // limit) is still arriving, and closing on it reset a client still uploading before it read
    // this answer. The lingering close reads that rest away, within time and byte limits.
    closeLingering(socket, rawAnswer(status, body));
    return;
  }
  // An answer written whole (a 404 or 405 given before the body, which then failed to parse as
  // the next request) goes out before the close: destroy() would discard it still queued over TLS.
  if (socket.writable && inFlight?.writableEnded === true) {
    closeLingering(socket);
    return;
  }
  socket.destroy();
}

/**
 * A 'checkExpectation' listener for node:http and node:https servers: a request whose Expect is
 * not 100-continue. Without it node answers 417 itself, with an empty body outside the coded-error
 * contract. The request is not routed (its body may be on its way), so the connection closes.
 */
export function answerUnmetExpectation(req: IncomingMessage, res: ServerResponse): void {
  const code: ErrorCode = 'RAMPART_ERR_EXPECTATION_FAILED';
  const body = JSON.stringify({ error: { code, message: 'the Expect header asks for something other than 100-continue, the only expectation this server meets; send the request without it' } });
  req.resume();
  res.writeHead(statusOf(code), { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

/** fastify's `frameworkErrors`: a URL that does not percent-decode, or a path segment too long to route. */
export function answerFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const message = error.code === 'FST_ERR_BAD_URL' ? 'the request URL is not valid: it does not percent-decode' : 'the request URL cannot be routed';
  return sendError(reply, 'RAMPART_ERR_BAD_REQUEST', message);
}

/**
 * RFC 9112 section 3.2: an HTTP/1.1 request must carry exactly one Host header with a valid
 * host[:port] value, and a server answers 400 otherwise. Node checks only for a missing one, and
 * answers it itself with a bare 400 and no body (its requireHostHeader option), outside the
 * coded-error contract; the servers turn that off and refuse with these messages instead.
 * Returns null when the request is fine.
 */
export function hostHeaderProblem(req: IncomingMessage): string | null {
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] as string).toLowerCase() === 'host') hosts++;
  // HTTP/1.0 needs no Host, but one it sends must still be a valid value.
  const http10 = req.httpVersionMajor === 1 && req.httpVersionMinor === 0;
  if (hosts === 0) return http10 ? null : 'an HTTP/1.1 request must carry a Host header';
  if (hosts > 1) return http10 ? null : 'the request carries more than one Host header';
  // The value is not quoted back: it is the peer's bytes.
  return isValidHostValue(req.headers.host ?? '') ? null : 'the Host header is not a valid host[:port] (RFC 9112 section 3.2)';
}

export interface FramingProblem {
  readonly code: Extract<ErrorCode, 'RAMPART_ERR_BAD_REQUEST' | 'RAMPART_ERR_HTTP_VERSION_NOT_SUPPORTED'>;
  readonly message: string;
}

/**
 * What makes a parsed request one this connection cannot be trusted to frame, or null:
 * - a request line naming HTTP/0.9 or HTTP/2.0, which node's parser takes and would serve as
 *   HTTP/1.1 (RFC 9110 section 15.6.6: 505);
 * - Transfer-Encoding on HTTP/1.0, which RFC 9112 section 6.1 says must be treated as faulty
 *   framing and the connection closed, as a proxy in front may have framed it differently
 *   (request smuggling); node serves it, and keeps the connection if asked;
 * - a bad Host (above).
 */
export function framingProblem(req: IncomingMessage): FramingProblem | null {
  if (req.httpVersionMajor !== 1) {
    // The version is digits by the parser's grammar; quoting it back echoes nothing of the peer's.
    return { code: 'RAMPART_ERR_HTTP_VERSION_NOT_SUPPORTED', message: `HTTP/${req.httpVersion} is not served here; send HTTP/1.1` };
  }
  const http10 = req.httpVersionMinor === 0;
  if (http10 && req.headers['transfer-encoding'] !== undefined) return { code: 'RAMPART_ERR_BAD_REQUEST', message: 'an HTTP/1.0 request cannot carry Transfer-Encoding (RFC 9112 section 6.1)' };
  const host = hostHeaderProblem(req);
  return host === null ? null : { code: 'RAMPART_ERR_BAD_REQUEST', message: host };
}
