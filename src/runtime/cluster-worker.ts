/**
 * The signing worker of the multi-core CA (cluster-ca.ts runs the primary): a replica of the
 * primary's state and the HTTPS API on the shared port.
 */
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { CaConfig } from '../config/ca-config.js';
import { systemClock } from '../core/clock.js';
import { isRampartError } from '../core/errors.js';
import { warmUpBeforeServing } from './issue-path-warm-up.js';
import { createCaMetrics } from '../observability/ca-metrics.js';
import { monotonicMetricsJson } from '../observability/cluster-metrics.js';
import type { ConnectionBalance } from '../server/connection-balance.js';
import { isPrimaryMessage, type WorkerMessage } from './cluster-messages.js';
import { ReplicaRuntime } from './replica-runtime.js';
import { startApi } from './start-api.js';

// Often enough to undo a burst's imbalance within a few requests per connection.
const CONNECTION_COUNT_INTERVAL_MS = 250;

/**
 * Runs in each worker: a replica fed by the primary, and the HTTPS API. A worker that cannot start
 * (its port is taken, say) tells the primary why and exits 2; the primary reports it once and
 * stops the others.
 */
export async function startClusterWorker(config: CaConfig, logger: Logger): Promise<{ stop(): Promise<void> }> {
  try {
    return await serveAsWorker(config, logger);
  } catch (err) {
    const failure: WorkerMessage = { t: 'rampart-failed', code: isRampartError(err) ? err.code : 'RAMPART_ERR_INTERNAL', message: isRampartError(err) ? err.message : 'a signing worker could not start; see its log' };
    if (!isRampartError(err)) logger.error({ err }, 'signing worker start-up failed');
    await new Promise<void>((resolve) => (process.connected && process.send ? process.send(failure, () => resolve()) : resolve()));
    process.exit(2);
  }
}

async function serveAsWorker(config: CaConfig, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const send = (message: WorkerMessage): void => {
    if (!process.connected) return;
    // With a callback a failed send (EPIPE as the primary dies) is reported here instead of as an
    // unhandled 'error' that would crash this worker in the middle of its requests.
    process.send?.(message, undefined, {}, (err: Error | null) => {
      if (err) logger.warn({ event: 'primary-channel-error', reason: err.message }, 'a message to the primary was lost');
    });
  };
  const registry = new Registry();
  // The process metrics are summed with the primary's: without a worker's, /metrics showed about
  // a third of the CA's real memory and CPU.
  collectDefaultMetrics({ register: registry, prefix: 'rampart_ca_' });
  const metrics = createCaMetrics(registry);
  const replica = new ReplicaRuntime(send, config.ttl, systemClock);
  // Totals that arrive before the API is up are dropped: the next report carries them again.
  let balance: ConnectionBalance | null = null;
  // Until the API is up there is nothing to drain: a stop request just ends the process.
  let stopOnce: () => Promise<void> = () => Promise.resolve();
  let listening = false;
  /** Finishes open requests (once the API is up) and ends this worker. */
  const leave = (): void => void stopOnce().finally(() => process.exit(0));
  // Ctrl-C in a terminal and systemd's stop signal the whole process group, workers included.
  // Left to the default action, a worker would die with its requests and long polls unanswered.
  // Before its API is up, the signal cancels the start: the primary is told so, and reports a
  // cancelled start rather than a worker that exited for no reason.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (listening || !process.connected || !process.send) {
      leave();
      return;
    }
    process.send({ t: 'rampart-cancelled', signal } satisfies WorkerMessage, undefined, {}, () => process.exit(0));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, onSignal);
  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    if (message.t === 'rampart-connections-total') {
      balance?.update(message.open, message.workers);
      return;
    }
    if (message.t === 'rampart-stop') {
      leave();
      return;
    }
    if (message.t === 'rampart-metrics-request') {
      const collected = message.scope === 'counters' ? monotonicMetricsJson(registry) : registry.getMetricsAsJSON();
      void collected.then((json) => send({ t: 'rampart-metrics', id: message.id, metrics: json }));
      return;
    }
    replica.receive(message);
  });
  send({ t: 'rampart-hello' });
  await replica.whenLoaded();
  const kube = config.authn.includes('kubernetes') ? await (await import('./kubernetes-support.js')).startKubernetesSupport(config, { logger, registry, clock: systemClock, authOnly: true }) : null;
  await warmUpBeforeServing(config, logger, systemClock);
  const api = await startApi(config, replica, { logger, clock: systemClock, metrics, balanceConnections: true, ...(kube ? { kubernetesAuthenticator: () => kube.authenticator() } : {}) });
  balance = api.connectionBalance;
  listening = true;
  send({ t: 'rampart-listening', url: api.url });
  let reportedOpen = 0;
  const countTimer = setInterval(() => {
    const open = balance?.open() ?? 0;
    if (open === reportedOpen) return;
    reportedOpen = open;
    send({ t: 'rampart-connections', open });
  }, CONNECTION_COUNT_INTERVAL_MS);
  countTimer.unref();
  // Operators (and the cluster test) see when a worker, first or replacement, takes requests.
  logger.info({ event: 'worker-serving' }, 'signing worker is serving the API');
  const stop = async (): Promise<void> => {
    clearInterval(countTimer);
    replica.stop();
    await api.stop();
    await kube?.stop();
  };
  let stopping: Promise<void> | undefined;
  stopOnce = () => (stopping ??= stop());
  // The primary asks its workers to stop (or disconnects, or dies); finish open requests and leave.
  process.once('disconnect', leave);
  return { stop: stopOnce };
}

export const isClusterWorker = (): boolean => cluster.isWorker && process.env['RAMPART_CLUSTER_WORKER'] === '1';
