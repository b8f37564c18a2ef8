/** The plain-HTTP monitoring listener: /healthz, /readyz, /metrics. */
import { fastify, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

/**
 * `metrics` overrides how the exposition is produced (the cluster primary merges its workers');
 * by default it is the registry's own.
 */
export function buildMonitoringApp(options: { registry: Registry; ready: () => boolean | string; metrics?: () => Promise<string> }): FastifyInstance {
  const app = fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = options.ready();
    if (ready === true) return { status: 'ready' };
    return reply.code(503).send({ status: 'not-ready', reason: typeof ready === 'string' ? ready : 'not ready' });
  });
  app.get('/metrics', async (_request, reply) => reply.type(options.registry.contentType).send(await (options.metrics ?? (() => options.registry.metrics()))()));
  return app;
}
