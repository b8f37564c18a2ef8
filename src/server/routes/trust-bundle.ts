/** GET /v1/trust-bundle: PEM, JSON or SPIFFE JWKS, with ETag and long-poll on the sequence. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthenticationError, BadRequestError } from '../../core/errors.js';
import { LogBudget } from '../../observability/log-budget.js';
import { workloadSpiffeId } from '../../core/identity.js';
import { bundleToJson, bundleToJwks, bundleToPem } from '../../core/ca/trust-bundle.js';
import { clientCertChain } from '../caller.js';
import type { CaServerDeps } from '../deps.js';
import { ifNoneMatchHits } from '../if-none-match.js';
import { BUNDLE_SEQUENCE_HEADER, recordAgentReport } from './agent-report.js';

interface BundleQuery {
  format?: string;
  after?: string;
  waitSeconds?: string;
}

const MAX_WAIT_SECONDS = 300;

/** A query value as received, for an error message: quoted, cut short, and a repeated parameter named as such. */
function asReceived(value: unknown): string {
  if (Array.isArray(value)) return `${value.length} values (give it once)`;
  const text = String(value);
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);
}

function parseNonNegative(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', `${name} must be a non-negative whole number, got ${asReceived(value)}`);
  return Number(value);
}

export function registerTrustBundleRoutes(app: FastifyInstance, deps: CaServerDeps, stopping: AbortSignal): void {
  // One line per refused report, up to 20 a minute; the rest are summed up (a client can send them in a loop).
  const refusedReports = new LogBudget(20, 60_000, Date.now, (suppressed, windowMs) =>
    deps.logger.warn({ event: 'bundle-reports-refused-summarized', suppressed, windowSeconds: windowMs / 1000 }, `${suppressed} more trust-bundle reports with an invalid client certificate were refused without a line each`),
  );
  app.get('/v1/trust-bundle', async (request: FastifyRequest<{ Querystring: BundleQuery }>, reply) => {
    const format = request.query.format ?? 'json';
    if (format !== 'json' && format !== 'pem' && format !== 'jwks') throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', `format must be pem, json or jwks, got ${asReceived(format)}`);
    const after = parseNonNegative(request.query.after, 'after');
    // A poll never outlasts the refresh interval, so a polling agent is always "seen recently"
    // when the CA judges propagation (within two refresh intervals).
    const wait = Math.min(parseNonNegative(request.query.waitSeconds, 'waitSeconds') ?? 0, MAX_WAIT_SECONDS, Math.max(1, deps.bundleRefreshHintSeconds));

    // Only a verified SVID may move the propagation counters: an anonymous report could fake them.
    // The chain is checked only when there is a report to record; the bundle itself is public.
    const chain = request.headers[BUNDLE_SEQUENCE_HEADER] === undefined ? [] : clientCertChain(request);
    if (chain.length > 0) {
      const identity = await deps.svidAuthenticator.authenticate({ clientCertChain: chain }).catch((err: unknown) => {
        if (refusedReports.take()) deps.logger.warn({ event: 'bundle-report-refused', reqId: request.id, reason: err instanceof AuthenticationError ? err.detail : 'error' }, 'a trust-bundle request reported a bundle sequence with a client certificate that is no valid SVID: the report is not counted');
        return null;
      });
      if (identity) recordAgentReport(request, deps, workloadSpiffeId(identity));
    }
    if (after !== undefined && wait > 0) await deps.runtime.waitForSequenceAfter(after, wait * 1000, stopping);
    if (stopping.aborted) void reply.header('connection', 'close');

    const bundle = deps.runtime.current().bundle;
    const etag = `"${bundle.sequence}"`;
    void reply.header('etag', etag).header('cache-control', 'no-cache').header('rampart-bundle-sequence', String(bundle.sequence));
    if (ifNoneMatchHits(request.headers['if-none-match'], etag)) return reply.code(304).send();
    if (format === 'pem') return reply.type('application/x-pem-file').send(bundleToPem(bundle));
    if (format === 'jwks') return reply.type('application/json').send(bundleToJwks(bundle, deps.bundleRefreshHintSeconds));
    return bundleToJson(bundle);
  });
}
