/** Builds the CA's API fastify instance (never listens: the caller decides where). */
import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { RampartError } from '../core/errors.js';
import { makeErrorHandler, sendError } from './error-handler.js';
import { answerClientError, answerConnect, answerFrameworkError, framingProblem } from './framing-errors.js';
import { deferContinue } from './expect-continue.js';
import type { CaServerDeps } from './deps.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerCertificateRoutes } from './routes/certificates.js';
import { registerTrustBundleRoutes } from './routes/trust-bundle.js';
import { lingerOnClose } from './lingering-close.js';
import { bodyLeftUnread } from './unread-body.js';
import { trackRouteMethods } from './route-methods.js';
import { setMaxListeners } from 'node:events';
import type { TlsOptions } from 'node:tls';
import { pathInMessage } from './path-in-message.js';

export const BODY_LIMIT_BYTES = 64 * 1024;

/** Builds the API app. `https` is omitted in tests that use inject(). */
export function buildCaApp(deps: CaServerDeps, https?: TlsOptions & { requestCert: boolean; rejectUnauthorized: boolean }): FastifyInstance {
  const options: FastifyServerOptions & { https?: unknown } = {
    // Fastify's own per-request logging stays off: routes log one line per issuance themselves.
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    keepAliveTimeout: 65_000,
    requestTimeout: 330_000,
    // fastify's own 503 while closing is not a coded error; the onRequest hook below answers instead.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    // Node would answer a request without Host itself, with a bare 400 (see hostHeaderProblem).
    // node offers only http/1.1 by ALPN, so `curl --http1.0` failed the handshake
    // ("no application protocol") although HTTP/1.0 requests are served.
    ...(https ? { https: { ...https, requireHostHeader: false, ALPNProtocols: ['http/1.1', 'http/1.0'] } } : {}),
  };
  const app = fastify(options as FastifyServerOptions) as unknown as FastifyInstance;
  deferContinue(app.server);
  app.server.on('connect', answerConnect);
  // A connection closed after an early answer (413, 417, Connection: close) is closed lingering,
  // so a client still uploading reads the answer instead of a reset.
  lingerOnClose(app.server);
  // Only JSON bodies are accepted; without this fastify would parse text/plain and answer 400.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(makeErrorHandler(deps.logger, deps.certificateNotAskedUntil));
  // Aborted when this process starts to shut down. A request that then arrives on a kept-alive
  // connection is told to come back on a new one, which the Service sends to a replica (or
  // worker) still serving; long polls in progress answer at once instead of holding the
  // shutdown for up to a refresh interval.
  const stopping = new AbortController();
  // Every parked poll listens on this one signal, thousands with a fleet: not a leak to warn of.
  setMaxListeners(0, stopping.signal);
  app.addHook('preClose', (done) => {
    stopping.abort();
    done();
  });
  app.addHook('onRequest', (request, reply, done) => {
    const framing = framingProblem(request.raw);
    if (framing !== null) {
      // As node would: the request is not one this connection can be trusted to frame.
      void reply.header('connection', 'close');
      done(new RampartError(framing.code, framing.message));
      return;
    }
    // Refused before its body is read or parsed: a JSON body sent to a wrong path or with a wrong
    // method was parsed first and got 400 "not valid JSON" or 413, and a slow chunked one held
    // the connection until it ended (outside QA).
    if (stopping.signal.aborted) {
      void reply.header('connection', 'close');
      sendError(reply, 'RAMPART_ERR_NOT_READY', 'this CA process is shutting down; retry on a new connection', 1);
      return;
    }
    if (request.is404) {
      done(noRoute(request, reply));
      return;
    }
    // Bodies are not decoded: a gzip one reached the JSON parser and got 400 "not valid JSON"
    // (outside QA). RFC 9110 section 15.5.16: 415, naming the codings taken in Accept-Encoding.
    if (encodedBody(request.headers['content-encoding'])) {
      void reply.header('accept-encoding', 'identity');
      done(new RampartError('RAMPART_ERR_UNSUPPORTED_MEDIA_TYPE', 'request bodies with a Content-Encoding are not taken; send the JSON body as it is'));
      return;
    }
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (bodyLeftUnread(request.raw)) void reply.header('connection', 'close');
    done(null, payload);
  });
  const methodsOf = trackRouteMethods(app);
  /** 404, or 405 with Allow for a known path asked with another method. */
  function noRoute(request: FastifyRequest, reply: FastifyReply): RampartError {
    const path = request.url.split('?', 1)[0] ?? '/';
    const allowed = methodsOf(path);
    if (allowed.length === 0) return new RampartError('RAMPART_ERR_NOT_FOUND', `no route ${request.method} ${pathInMessage(path)}`);
    void reply.header('allow', allowed.join(', '));
    return new RampartError('RAMPART_ERR_METHOD_NOT_ALLOWED', `${pathInMessage(path)} takes ${allowed.join(' or ')}, not ${request.method}`);
  }
  // Thrown, not sent, so the error handler logs the refusal like every other. The onRequest hook
  // answers first; this stays for fastify, which needs a handler for what no route matches.
  app.setNotFoundHandler(async (request, reply) => {
    throw noRoute(request, reply);
  });
  registerCertificateRoutes(app, deps);
  registerTrustBundleRoutes(app, deps, stopping.signal);
  registerAdminRoutes(app, deps);
  return app;
}

/** True for a Content-Encoding other than none or `identity`. */
function encodedBody(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const codings = (Array.isArray(header) ? header.join(',') : header).split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '');
  return codings.some((c) => c !== 'identity');
}
