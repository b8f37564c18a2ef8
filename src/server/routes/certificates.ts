/** POST /v1/certificates: authenticate, check the CSR, sign, answer with chain and bundle. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError, UnavailableError } from '../../core/errors.js';
import { answeredCode } from '../error-handler.js';
import { workloadSpiffeId } from '../../core/identity.js';
import { authenticationRequest } from '../caller.js';
import type { CaServerDeps } from '../deps.js';
import { recordAgentReport } from './agent-report.js';
import { createTurnBatch } from '../turn-batch.js';

// Answers signed in one event-loop turn leave together (turn-batch.ts). A signature costs about
// 0.3 ms, so 16 answers or 2 ms keeps the hold within a few signatures' time.
const RESPONSES_HELD_AT_MOST = 16;
const HOLD_AT_MOST_MS = 2;

interface CertificateBody {
  csr?: unknown;
  ttlSeconds?: unknown;
}

export function registerCertificateRoutes(app: FastifyInstance, deps: CaServerDeps): void {
  let inFlight = 0;
  const answers = createTurnBatch({ maxBatch: RESPONSES_HELD_AT_MOST, maxDelayMs: HOLD_AT_MOST_MS });
  // Every refusal is counted here, including those fastify makes before the handler runs (a body
  // over 64 KiB, a wrong content type), under the code the caller is answered with.
  const countRefusal = (_request: FastifyRequest, _reply: unknown, error: Error, done: () => void): void => {
    deps.metrics.issued.inc({ result: answeredCode(error) });
    done();
  };
  app.post<{ Body: CertificateBody }>('/v1/certificates', { onError: countRefusal }, async (request, reply) => {
    const started = process.hrtime.bigint();
    if (inFlight >= deps.maxInFlight) {
      throw new UnavailableError('RAMPART_ERR_RATE_LIMITED', 'the CA is at capacity; retry after the Retry-After delay', { retryAfterSeconds: 1 + Math.floor(Math.random() * 3) });
    }
    inFlight++;
    try {
      const presented = authenticationRequest(request);
      // A caller that presented nothing learns first that it must authenticate (401), not what
      // its body lacks (outside QA). With credentials the body is checked first, so a malformed
      // request costs no TokenReview.
      const anonymous = presented.bearerToken === undefined && presented.clientCertChain === undefined;
      const early = anonymous ? await deps.authenticator.authenticate(presented) : undefined;
      const body = request.body;
      if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', 'body must be a JSON object {"csr": "<PEM>", "ttlSeconds"?: n}');
      if (typeof body.csr !== 'string') throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', 'body.csr must be a PEM string');
      const caller = early ?? (await deps.authenticator.authenticate(presented));
      const issued = deps.runtime.issue({ csrPem: body.csr, ttlSeconds: body.ttlSeconds, caller });
      recordAgentReport(request, deps, workloadSpiffeId(caller.identity));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      deps.metrics.issued.inc({ result: 'ok' });
      deps.metrics.issueDuration.observe(seconds);
      deps.logger.info(
        {
          reqId: request.id,
          spiffeId: issued.spiffeId,
          serial: issued.serialHex,
          notAfter: new Date(issued.expiresAt).toISOString(),
          durationMs: Math.round(seconds * 1e6) / 1000,
          authenticator: caller.authenticator,
          keyType: issued.keyType,
          ttlSeconds: issued.grantedTtlSeconds,
        },
        'certificate issued',
      );
      await answers.release();
      void reply.header('rampart-bundle-sequence', String(issued.bundleSequence));
      return {
        spiffeId: issued.spiffeId,
        certChain: issued.certChain,
        trustBundle: issued.trustBundle,
        bundleSequence: issued.bundleSequence,
        expiresAt: new Date(issued.expiresAt).toISOString(),
        notBefore: new Date(issued.notBefore).toISOString(),
        ttlSeconds: issued.grantedTtlSeconds,
        serial: issued.serialHex,
      };
    } finally {
      inFlight--;
    }
  });
}
