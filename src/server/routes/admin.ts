/** Admin API: rotation status and steps, for identities listed in admin.identities only. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError, ForbiddenError } from '../../core/errors.js';
import { workloadSpiffeId } from '../../core/identity.js';
import { authenticationRequest } from '../caller.js';
import type { CaServerDeps } from '../deps.js';

interface StepBody {
  force?: unknown;
}

async function requireAdmin(request: FastifyRequest, deps: CaServerDeps): Promise<string> {
  const caller = await deps.authenticator.authenticate(authenticationRequest(request));
  const id = workloadSpiffeId(caller.identity);
  if (!deps.adminIdentities.includes(id)) {
    throw new ForbiddenError('RAMPART_ERR_NOT_ADMIN', `${id} is not an admin identity; add it to admin.identities in the CA config`);
  }
  return id;
}

/**
 * A step's body is empty or `{"force": true|false}`. Anything else is refused rather than read as
 * "no force": an admin who sent `{"force": "yes"}` must not believe the safety checks were skipped.
 */
function forceOf(body: unknown): boolean {
  if (body === undefined || body === null) return false;
  if (typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', 'the body of a rotation step must be a JSON object such as {"force": true}, or empty');
  const extra = Object.keys(body).find((k) => k !== 'force');
  if (extra !== undefined) throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', `unknown field "${extra.slice(0, 40)}" in a rotation step; only "force" is accepted`);
  const force = (body as StepBody).force;
  if (force !== undefined && typeof force !== 'boolean') throw new BadRequestError('RAMPART_ERR_BAD_REQUEST', '"force" must be true or false');
  return force === true;
}

export function registerAdminRoutes(app: FastifyInstance, deps: CaServerDeps): void {
  app.get('/v1/admin/status', async (request) => {
    await requireAdmin(request, deps);
    return await deps.runtime.status();
  });
  for (const step of ['prepare', 'activate', 'retire'] as const) {
    app.post(`/v1/admin/roots/${step}`, async (request: FastifyRequest<{ Body: StepBody | undefined }>) => {
      const admin = await requireAdmin(request, deps);
      const force = forceOf(request.body);
      deps.logger.info({ reqId: request.id, event: `admin-${step}`, admin, force }, `admin requested root ${step}`);
      if (step === 'prepare') await deps.runtime.prepare();
      else if (step === 'activate') await deps.runtime.activate(force);
      else await deps.runtime.retire(force);
      return await deps.runtime.status();
    });
  }
}
