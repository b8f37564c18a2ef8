/** GET /v1/trust-bundle: PEM, JSON or SPIFFE JWKS, with ETag and long-poll on the sequence. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError } from '../../core/errors.js';
import { workloadSpiffeId } from '../../core/identity.js';
import { bundleToJson, bundleToJwks, bundleToPem } from '../../core/ca/trust-bundle.js';
import { clientCertChain } from '../caller.js';
import type { CaServerDeps } from '../deps.js';
import { ifNoneMatchHits } from '../if-none-match.js';
import { recordAgentReport } from './agent-report.js';

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
  app.get('/v1/trust-bundle', async (request: FastifyRequest<{ Querystring: BundleQuery }>, reply) => {
    const format = request.query.format ?? 'json';
    if (format !== 'json' && format !== 'pem' && format !== 'jwks') throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', `format must be pem, json or jwks, got ${asReceived(format)}`);
    const after = parseNonNegative(request.query.after, 'after');
    // A poll never outlasts the refresh interval, so a polling agent is always "seen recently"
    // when the CA judges propagation (within two refresh intervals).
    const wait = Math.min(parseNonNegative(request.query.waitSeconds, 'waitSeconds') ?? 0, MAX_WAIT_SECONDS, Math.max(1, deps.bundleRefreshHintSeconds));

    // Only a verified SVID may move the propagation counters: an anonymous report could fake them.
    const chain = clientCertChain(request);
    if (chain.length > 0) {
      const identity = await deps.svidAuthenticator.authenticate({ clientCertChain: chain }).catch(() => null);
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
