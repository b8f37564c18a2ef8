/** The agent's certificate-lifecycle metrics; the proxy registers its own connection metrics. */
import type { Registry } from 'prom-client';
import { registerProcessMetrics } from '../observability/process-metrics.js';
import { Counter, Gauge, Registry as LeanRegistry } from '../observability/prom-lean.js';

/** A fresh registry with the agent's process metrics, as every agent process exports them. */
export function createAgentRegistry(): Registry {
  const registry = new LeanRegistry();
  registerProcessMetrics(registry, 'rampart_agent_process_');
  return registry;
}

/** What the certificate manager reports. */
export interface AgentMetrics {
  /** One renewal attempt: `ok`, or the error code that stopped it. */
  renewal(result: string): void;
  /** NotAfter of the certificate in use, ms since the epoch. */
  certificateExpiry(notAfterMs: number): void;
  /** The trust-bundle sequence the agent holds. */
  bundleSequence(sequence: number): void;
}

/** Registers the agent metrics on `registry`. */
export function createAgentMetrics(registry: Registry): AgentMetrics {
  const expiry = new Gauge({
    name: 'rampart_agent_certificate_expiry_timestamp_seconds',
    help: 'NotAfter of the X.509-SVID the agent currently serves, as a Unix timestamp.',
    registers: [registry],
  });
  const renewals = new Counter({
    name: 'rampart_agent_renewals_total',
    help: 'Certificate fetch and renewal attempts, by result (ok or the RAMPART_ERR_* code).',
    labelNames: ['result'],
    registers: [registry],
  });
  const sequence = new Gauge({
    name: 'rampart_agent_trust_bundle_sequence',
    help: 'Sequence of the trust bundle the agent holds.',
    registers: [registry],
  });
  return {
    renewal: (result) => renewals.inc({ result }),
    certificateExpiry: (ms) => expiry.set(ms / 1000),
    bundleSequence: (seq) => sequence.set(seq),
  };
}
