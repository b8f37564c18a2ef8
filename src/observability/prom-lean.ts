/**
 * prom-client's Registry, Counter and Gauge without the rest of the package, for the agent.
 *
 * The package entry also loads its default-metrics collectors, and one of them loads
 * @opentelemetry/api: importing `prom-client` costs a sidecar about 7 MB of resident memory,
 * the three classes about 1 MB (measured from /proc/self/status around the require). They are
 * the very same classes the package entry exports, so registries mix freely with the CA's.
 */
import { createRequire } from 'node:module';
import type PromClient from 'prom-client';

const load = createRequire(import.meta.url);

export const Registry = load('prom-client/lib/registry') as typeof PromClient.Registry;
export const Counter = load('prom-client/lib/counter') as typeof PromClient.Counter;
export const Gauge = load('prom-client/lib/gauge') as typeof PromClient.Gauge;
