import type { Counter, Gauge, Registry } from 'prom-client';

/** Metrics the proxy updates; no-ops when no registry was given. */
export interface ProxyMetrics {
  connection(direction: 'inbound' | 'outbound', result: string): void;
  active(direction: 'inbound' | 'outbound', delta: number): void;
  tunnelSession(direction: 'inbound' | 'outbound', result: string): void;
  /** A pooled tunnel session opened (+1) or closed (-1). */
  tunnelOpen(direction: 'inbound' | 'outbound', delta: number): void;
}

const noop: ProxyMetrics = { connection() {}, active() {}, tunnelSession() {}, tunnelOpen() {} };

/**
 * Registers (or reuses, when an inbound and an outbound share a registry) the proxy metrics.
 * Reuse matters because prom-client throws on a second registration of the same name.
 * The metric classes are loaded only when a registry is given, so a proxy that exports no
 * metrics carries none of prom-client.
 */
export async function proxyMetrics(registry: Registry | undefined): Promise<ProxyMetrics> {
  if (registry === undefined) return noop;
  const { Counter, Gauge } = await import('../../observability/prom-lean.js');
  const connections =
    (registry.getSingleMetric('rampart_agent_connections_total') as Counter<'direction' | 'result'> | undefined) ??
    new Counter({
      name: 'rampart_agent_connections_total',
      help: 'Application connections proxied by the agent, by direction and outcome.',
      labelNames: ['direction', 'result'],
      registers: [registry],
    });
  const active =
    (registry.getSingleMetric('rampart_agent_active_connections') as Gauge<'direction'> | undefined) ??
    new Gauge({
      name: 'rampart_agent_active_connections',
      help: 'Application connections currently open through the agent.',
      labelNames: ['direction'],
      registers: [registry],
    });
  const sessions =
    (registry.getSingleMetric('rampart_agent_tunnel_sessions_total') as Counter<'direction' | 'result'> | undefined) ??
    new Counter({
      name: 'rampart_agent_tunnel_sessions_total',
      help: 'Pooled HTTP/2 mTLS tunnel sessions between agents, by direction and how they ended.',
      labelNames: ['direction', 'result'],
      registers: [registry],
    });
  // Ended sessions alone could not show the pool shrinking back after a burst (outside QA counted
  // sockets with ss instead).
  const open =
    (registry.getSingleMetric('rampart_agent_tunnel_sessions_open') as Gauge<'direction'> | undefined) ??
    new Gauge({
      name: 'rampart_agent_tunnel_sessions_open',
      help: 'Pooled HTTP/2 mTLS tunnel sessions between agents currently open, by direction.',
      labelNames: ['direction'],
      registers: [registry],
    });
  return {
    tunnelOpen: (direction, delta) => open.inc({ direction }, delta),
    connection: (direction, result) => connections.inc({ direction, result }),
    active: (direction, delta) => active.inc({ direction }, delta),
    tunnelSession: (direction, result) => sessions.inc({ direction, result }),
  };
}
