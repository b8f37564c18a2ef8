/** Agents report the bundle sequence they hold with every request; the CA tracks propagation. */
import type { FastifyRequest } from 'fastify';
import type { CaServerDeps } from '../deps.js';

export const BUNDLE_SEQUENCE_HEADER = 'rampart-bundle-sequence';
export const AGENT_ID_HEADER = 'rampart-agent-id';

/** Records `Rampart-Bundle-Sequence` for an already authenticated caller. */
export function recordAgentReport(request: FastifyRequest, deps: CaServerDeps, spiffeId: string): void {
  const raw = request.headers[BUNDLE_SEQUENCE_HEADER];
  if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw)) return;
  const agentHeader = request.headers[AGENT_ID_HEADER];
  // Several pods share a service account: the agent's own instance id keeps them apart, and the
  // address it calls from keeps a sibling pod that sends the same id (a pod name is easy to
  // guess) from overwriting a lagging agent's sighting with a newer sequence (outside QA).
  const instance = typeof agentHeader === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(agentHeader) ? agentHeader : '';
  const from = request.socket.remoteAddress ?? '';
  deps.runtime.reportAgentSequence(`${spiffeId}#${instance}@${from}`, Number(raw));
}
