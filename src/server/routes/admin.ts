/** Admin API: rotation status and steps, for identities listed in admin.identities only. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ForbiddenError } from '../../core/errors.js';
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

export function registerAdminRoutes(app: FastifyInstance, deps: CaServerDeps): void {
  app.get('/v1/admin/status', async (request) => {
    await requireAdmin(request, deps);
    return await deps.runtime.status();
  });
  for (const step of ['prepare', 'activate', 'retire'] as const) {
    app.post(`/v1/admin/roots/${step}`, async (request: FastifyRequest<{ Body: StepBody | undefined }>) => {
      const admin = await requireAdmin(request, deps);
      const force = typeof request.body === 'object' && request.body !== null && request.body.force === true;
      deps.logger.info({ reqId: request.id, event: `admin-${step}`, admin, force }, `admin requested root ${step}`);
      if (step === 'prepare') await deps.runtime.prepare();
      else if (step === 'activate') await deps.runtime.activate(force);
      else await deps.runtime.retire(force);
      return await deps.runtime.status();
    });
  }
}
