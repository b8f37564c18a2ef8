/** Builds the CA's API fastify instance (never listens: the caller decides where). */
import { fastify, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { makeErrorHandler, sendError } from './error-handler.js';
import type { CaServerDeps } from './deps.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerCertificateRoutes } from './routes/certificates.js';
import { registerTrustBundleRoutes } from './routes/trust-bundle.js';
import type { SecureContextOptions } from 'node:tls';

export const BODY_LIMIT_BYTES = 64 * 1024;

/** Builds the API app. `https` is omitted in tests that use inject(). */
export function buildCaApp(deps: CaServerDeps, https?: SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean }): FastifyInstance {
  const options: FastifyServerOptions & { https?: unknown } = {
    // Fastify's own per-request logging stays off: routes log one line per issuance themselves.
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    keepAliveTimeout: 65_000,
    requestTimeout: 330_000,
    return503OnClosing: true,
    ...(https ? { https } : {}),
  };
  const app = fastify(options as FastifyServerOptions) as unknown as FastifyInstance;
  // Only JSON bodies are accepted; without this fastify would parse text/plain and answer 400.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(makeErrorHandler(deps.logger));
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'RAMPART_ERR_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`));
  registerCertificateRoutes(app, deps);
  registerTrustBundleRoutes(app, deps);
  registerAdminRoutes(app, deps);
  return app;
}
