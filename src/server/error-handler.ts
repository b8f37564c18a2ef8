/** The only place that maps Rampart errors (and fastify's own) to HTTP status and error bodies. */
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { bearerToken, clientCertChain } from './caller.js';
import { addressKey } from '../tls/client-chain-guard.js';
import { AuthenticationError, ERROR_CATALOGUE, isRampartError, type ErrorCategory, type ErrorCode } from '../core/errors.js';

export const STATUS_OF: Readonly<Record<ErrorCategory, number>> = {
  'bad-request': 400,
  unauthenticated: 401,
  forbidden: 403,
  'not-found': 404,
  'method-not-allowed': 405,
  'expectation-failed': 417,
  conflict: 409,
  'payload-too-large': 413,
  'headers-too-large': 431,
  'http-version-not-supported': 505,
  'request-timeout': 408,
  'unsupported-media-type': 415,
  'rate-limited': 429,
  unavailable: 503,
  config: 500,
  internal: 500,
};

/** The HTTP status a code is answered with: its category's. */
export function statusOf(code: ErrorCode): number {
  return STATUS_OF[ERROR_CATALOGUE[code].category];
}

/** The wire shape of every error response. */
export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string };
}

const FASTIFY_CODES: Readonly<Record<string, { code: ErrorCode; message: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'RAMPART_ERR_BODY_TOO_LARGE', message: 'request body is over 64 KiB' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'RAMPART_ERR_UNSUPPORTED_MEDIA_TYPE', message: 'send the request body as application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: 'RAMPART_ERR_BAD_REQUEST', message: 'content-length does not match the body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'RAMPART_ERR_BAD_REQUEST', message: 'request body is empty; send a JSON object' },
  // fastify drops the parser's own reason, so the message names both ways to fail it.
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'RAMPART_ERR_BAD_REQUEST', message: 'request body is not valid JSON, or it has a __proto__ or constructor.prototype key (refused)' },
};

/** fastify's own request error (body parsing, content type) as a Rampart code and message, if it is one. */
function mappedFastifyError(error: FastifyError | Error): { code: ErrorCode; message: string } | undefined {
  const fastifyCode = (error as FastifyError).code;
  const mapped = fastifyCode === undefined ? undefined : FASTIFY_CODES[fastifyCode];
  if (mapped) return mapped;
  if (fastifyCode === 'FST_ERR_VALIDATION' || (error as SyntaxError).name === 'SyntaxError' || (error as FastifyError).statusCode === 400) {
    return { code: 'RAMPART_ERR_BAD_REQUEST', message: `request body is not valid: ${error.message.slice(0, 200)}` };
  }
  return undefined;
}

/** The code any error is answered with (what metrics count it as). */
export function answeredCode(error: FastifyError | Error): ErrorCode {
  if (isRampartError(error)) return error.code;
  return mappedFastifyError(error)?.code ?? 'RAMPART_ERR_INTERNAL';
}

/** Answers with `code`'s coded body and the status of its category. */
export function sendError(reply: FastifyReply, code: ErrorCode, message: string, retryAfterSeconds?: number): FastifyReply {
  const status = statusOf(code);
  if (retryAfterSeconds !== undefined) void reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterSeconds))));
  // RFC 9110 requires a 401 to name the scheme it wants: a bearer token (or an SVID at the TLS layer).
  if (status === 401) void reply.header('www-authenticate', 'Bearer realm="rampart-ca"');
  const body: ErrorBody = { error: { code, message } };
  return reply.code(status).type('application/json').send(body);
}

/**
 * A refused request (4xx other than 401), so an operator can see who asked for what: a workload
 * asking for another's identity, a non-admin on /v1/admin. Messages never hold secrets (they name
 * identities and fields). Unknown paths and 429s, which scanners and load produce by the
 * thousand, go to debug; the metrics count those.
 */
function logRefusal(logger: Logger, request: FastifyRequest, status: number, code: ErrorCode, message: string): void {
  const line = { reqId: request.id, status, code, reason: message, method: request.method, url: request.url };
  if (status === 404 || status === 429) logger.debug(line, 'request refused');
  else logger.info(line, 'request refused');
}

/**
 * Logs a 401 with what the caller brought and from where, and returns the message to answer with.
 * A caller on a connection that was not asked for a client certificate (its address had
 * presented chains that failed verification) sent none for that reason: the log and the answer
 * say so and until when, or an SVID caller there would see only "no credentials" and an
 * operator a client that forgot its certificate.
 */
function answerAuthenticationFailure(
  logger: Logger,
  request: FastifyRequest,
  error: AuthenticationError,
  certificateNotAskedUntil: ((socket: Socket) => number | null) | undefined,
): string {
  // Written as the client-chain guard writes it (an IPv4-mapped address as plain IPv4), so one
  // grep finds both the guard's warning and the 401s that followed.
  const socketAddress = request.socket.remoteAddress;
  const remoteAddress = socketAddress === undefined ? undefined : addressKey(socketAddress);
  const hasClientCertificate = clientCertChain(request).length > 0;
  const notAskedUntil = hasClientCertificate ? null : (certificateNotAskedUntil?.(request.socket) ?? null);
  const notAsked = notAskedUntil === null ? {} : { clientCertificateNotAskedUntil: new Date(notAskedUntil).toISOString() };
  logger.info(
    { reqId: request.id, code: error.code, reason: error.detail, method: request.method, url: request.url, remoteAddress, hasBearerToken: bearerToken(request) !== undefined, hasClientCertificate, ...notAsked },
    'authentication failed',
  );
  if (notAskedUntil === null) return error.message;
  return `${error.message}; this address is not asked for a TLS client certificate until ${notAsked.clientCertificateNotAskedUntil} because client certificate chains from it failed verification: use a token`;
}

/** Fastify error handler: coded errors keep their message; anything unexpected becomes a generic 500. */
export function makeErrorHandler(logger: Logger, certificateNotAskedUntil?: (socket: Socket) => number | null) {
  return (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (isRampartError(error)) {
      const status = STATUS_OF[error.category];
      if (error instanceof AuthenticationError) {
        const message = answerAuthenticationFailure(logger, request, error, certificateNotAskedUntil);
        return sendError(reply, error.code, message, error.retryAfterSeconds);
      } else if (status < 500) {
        logRefusal(logger, request, status, error.code, error.message);
      } else if (status === 503) {
        // A dependency that is down or a CA that is stopping: an operating condition, not a bug,
        // so no stack; the code and message say what it is.
        logger.warn({ reqId: request.id, code: error.code, reason: error.message }, 'request answered 503');
      } else if (status >= 500) {
        logger.error({ reqId: request.id, code: error.code, err: error }, error.message);
      }
      return sendError(reply, error.code, error.message, error.retryAfterSeconds ?? (status === 429 || status === 503 ? 1 : undefined));
    }
    const mapped = mappedFastifyError(error);
    if (mapped) {
      // A parser's own message may quote the body; the log gets only the fixed texts.
      const fixedText = FASTIFY_CODES[(error as FastifyError).code ?? ''] !== undefined;
      logRefusal(logger, request, statusOf(mapped.code), mapped.code, fixedText ? mapped.message : 'request body is not valid');
      return sendError(reply, mapped.code, mapped.message);
    }
    logger.error({ reqId: request.id, err: error }, 'unexpected error');
    return sendError(reply, 'RAMPART_ERR_INTERNAL', 'internal error; see the CA log');
  };
}
