/**
 * Which methods each registered path takes, so a known path asked with another method is answered
 * 405 with an Allow header (RFC 9110 15.5.6) instead of a 404 that says the endpoint does not exist.
 */
import type { FastifyInstance } from 'fastify';

/** Records every route registered on `app` from now on; returns the methods a path takes, sorted. */
export function trackRouteMethods(app: FastifyInstance): (path: string) => readonly string[] {
  const methodsByPath = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = methodsByPath.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method.toUpperCase());
    methodsByPath.set(route.url, methods);
  });
  return (path) => [...(methodsByPath.get(path) ?? [])].sort();
}
