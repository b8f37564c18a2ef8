/**
 * prom-client's Registry, Counter and Gauge without the rest of the package, for the agent.
 *
 * The package entry also loads its default-metrics collectors, and one of them loads
 * @opentelemetry/api: importing `prom-client` costs a sidecar about 7 MB of resident memory,
 * the three classes about 1 MB (measured from /proc/self/status around the require). They are
 * the very same classes the package entry exports, so registries mix freely with the CA's.
 * Static imports (typed in prom-client-lib.d.ts) so bundlers follow them too.
 */
import CounterClass from 'prom-client/lib/counter.js';
import GaugeClass from 'prom-client/lib/gauge.js';
import RegistryClass from 'prom-client/lib/registry.js';

export const Registry = RegistryClass;
export const Counter = CounterClass;
export const Gauge = GaugeClass;
