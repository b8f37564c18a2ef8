/**
 * Multi-core CA with node:cluster. The primary owns the store and the runtime (so state keeps a
 * single writer and one lock), serves monitoring, and forks `--workers` signing processes that
 * share the API port; each worker signs with its own copy of the current intermediate.
 *
 * Workers accept from the shared socket themselves (SCHED_NONE). With node's round robin the
 * primary accepts every connection and passes it over IPC, one at a time per worker: on the
 * 10,000-agent fleet that hand-off cost the CA 0.1-0.9 ms of CPU per agent, and the flood waited
 * in the primary where no worker could see its age. The workers' open connections are summed
 * here so each can give up its excess (server/connection-balance.ts). The workers' side is
 * cluster-worker.ts.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { ensureDevIssuer } from '../authn/dev.js';
import type { CaConfig } from '../config/ca-config.js';
import { formatHostPort } from '../config/values.js';
import { signingOnlyState } from '../core/ca/signing-only-state.js';
import { ERROR_CATALOGUE, isRampartError, RampartError, type ErrorCode } from '../core/errors.js';
import { ClusterMetrics, type MetricsJson } from '../observability/cluster-metrics.js';
import { listenNamed } from '../server/listen-failure.js';
import { createMonitoringServer } from '../server/monitoring.js';
import { isWorkerMessage, type PrimaryMessage } from './cluster-messages.js';
import type { CaRuntime } from './ca-runtime.js';
import { RestartBackoff } from './restart-backoff.js';
import { startCaCore } from './start-ca.js';
import { CaStartCancelled, cancellationOf, throwIfCancelled } from './start-cancelled.js';

// A worker that cannot start fails again as soon as it is forked: 1 s, 2 s, 4 s ... 30 s between
// tries keeps that from spinning a core; after 30 s of serving, a slot's next crash is a new one.
const RESTART_BACKOFF = { firstMs: 1000, maxMs: 30_000, resetAfterMs: 30_000, jitter: 0.2 } as const;
/**
 * How often the primary takes each serving worker's counts between scrapes. A worker killed
 * outright leaves its last report behind, so this bounds what its death can lose from /metrics:
 * taken only at scrapes, every issuance since the last scrape vanished (outside QA). Only counters
 * and histograms are taken then: the gauges wait for a scrape.
 */
const WORKER_METRICS_REFRESH_MS = 1_000;
/**
 * A serving worker that has answered none of those requests for this long is killed and replaced;
 * a signing loop never holds its event loop for more than milliseconds, so only a stopped or
 * wedged process stays silent this long.
 */
const WORKER_SILENCE_KILL_MS = 15_000;
/** While no serving worker has answered for this long, /readyz says not ready. */
const WORKER_SILENCE_UNREADY_MS = 5_000;

export interface RunningClusterCa {
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  /** The primary's runtime, which holds the CA state. */
  readonly runtime: CaRuntime;
  stop(): Promise<void>;
}

/** Options of {@link startClusterPrimary}. */
export interface ClusterStartOptions {
  /**
   * Cancels the start (SIGTERM while it runs) until the first worker's API listens: the workers
   * forked so far are stopped, what the start created is rolled back, and CaStartCancelled is thrown.
   */
  readonly signal?: AbortSignal;
}

/** The signals by which Ctrl-C, systemd and Kubernetes ask a process to stop. */
const isStopSignal = (signal: string | null): signal is 'SIGINT' | 'SIGTERM' => signal === 'SIGINT' || signal === 'SIGTERM';

/**
 * Runs in the primary: state owner, monitoring, worker supervision. At most one worker per core is
 * started first and the rest once one serves: a start that cannot succeed (its port taken, a bad
 * JWKS file) fails in every worker alike, and forking them all at once made the primary wait for
 * all of them to boot before it could report the first one's failure (94 s for --workers 256 on
 * two cores).
 */
export async function startClusterPrimary(config: CaConfig, logger: Logger, options: ClusterStartOptions = {}): Promise<RunningClusterCa> {
  const core = await startCaCore(config, { logger });
  const runtime = core.runtime;
  const workers = new Set<Worker>();
  // Workers that have said hello, and so listen for the primary's messages; one that has not yet
  // would miss a stop request, so it is stopped by a signal instead.
  const greeted = new Set<Worker>();
  // Workers whose API listens, and since when: readiness counts these, not workers merely forked.
  const servingWorkers = new Map<Worker, number>();
  // When each worker last said anything. Serving workers answer a metrics request every second,
  // so a silent one is stopped (SIGSTOP), wedged or gone without an exit.
  const lastHeard = new Map<Worker, number>();
  const metricWaiters = new Map<number, (m: unknown) => void>();
  // Keeps an exited worker's last counts in the exposition, so counters never go down.
  const clusterMetrics = new ClusterMetrics();
  let nextMetricId = 1;
  let stopping = false;
  let resolveUrl: (url: string) => void = () => undefined;
  let failStartup: (err: RampartError | CaStartCancelled) => void = () => undefined;
  // Whichever comes first settles the start: a worker serving, a failure, a cancellation.
  let startup: 'starting' | 'serving' | 'failed' = 'starting';
  const apiUrl = new Promise<string>((resolve, reject) => {
    resolveUrl = (url) => {
      if (startup !== 'starting') return;
      startup = 'serving';
      resolve(url);
    };
    failStartup = (err) => {
      if (startup !== 'starting') return;
      startup = 'failed';
      reject(err);
    };
  });
  const serving = (): boolean => startup === 'serving';

  const sendTo = (worker: Worker, message: PrimaryMessage): void => {
    if (worker.isConnected()) worker.send(message);
  };
  const openConnections = new Map<Worker, number>();
  const reportConnections = (): void => {
    let open = 0;
    for (const n of openConnections.values()) open += n;
    for (const w of workers) sendTo(w, { t: 'rampart-connections-total', open, workers: workers.size });
  };
  runtime.onChange(() => {
    for (const w of workers) sendTo(w, { t: 'rampart-state', state: signingOnlyState(runtime.state()) });
  });

  const handle = (worker: Worker, message: unknown): void => {
    if (!isWorkerMessage(message)) return;
    lastHeard.set(worker, Date.now());
    // A worker asks for the state before it listens: 'online' fires before its handlers are set.
    if (message.t === 'rampart-hello') {
      greeted.add(worker);
      sendTo(worker, { t: 'rampart-state', state: signingOnlyState(runtime.state()) });
    } else if (message.t === 'rampart-listening') {
      servingWorkers.set(worker, Date.now());
      resolveUrl(message.url);
    }
    else if (message.t === 'rampart-failed') {
      const code = (message.code in ERROR_CATALOGUE ? message.code : 'RAMPART_ERR_INTERNAL') as ErrorCode;
      if (!serving()) failStartup(new RampartError(code, message.message));
      else logger.error({ event: 'worker-start-failed', code, reason: message.message }, 'a replacement signing worker could not start');
    }
    // A stop signal reached a worker still starting (Ctrl-C and systemd signal the whole group).
    else if (message.t === 'rampart-cancelled') {
      if (!serving()) failStartup(new CaStartCancelled(message.signal));
    }
    else if (message.t === 'rampart-connections') {
      openConnections.set(worker, message.open);
      reportConnections();
    } else if (message.t === 'rampart-reports') for (const [id, seq] of message.entries) runtime.reportAgentSequence(id, seq);
    else if (message.t === 'rampart-metrics') metricWaiters.get(message.id)?.(message.metrics);
    else if (message.t === 'rampart-admin') {
      const op = message.op;
      const work = op === 'status' ? Promise.resolve(runtime.status()) : (op === 'prepare' ? runtime.prepare() : op === 'activate' ? runtime.activate(message.force) : runtime.retire(message.force)).then(() => runtime.status());
      work.then(
        (value) => sendTo(worker, { t: 'rampart-reply', id: message.id, ok: true, value }),
        (err: unknown) => sendTo(worker, { t: 'rampart-reply', id: message.id, ok: false, code: isRampartError(err) ? err.code : 'RAMPART_ERR_INTERNAL', message: isRampartError(err) ? err.message : 'internal error; see the CA log' }),
      );
    }
  };

  const fork = (backoff: RestartBackoff): void => {
    const worker = cluster.fork({ RAMPART_CLUSTER_WORKER: '1' });
    workers.add(worker);
    logger.debug({ event: 'worker-forked', workerPid: worker.process.pid }, 'forked a signing worker');
    worker.on('message', (m: unknown) => handle(worker, m));
    // A send can race a worker's exit (EPIPE on its channel); unhandled, that error would take
    // the primary, and with it the state lock and every other worker, down. The exit handler
    // below deals with the worker itself.
    worker.on('error', (err: Error) => logger.warn({ event: 'worker-channel-error', reason: err.message }, 'a message to a signing worker was lost'));
    worker.on('exit', (code, signal) => {
      const servingSince = servingWorkers.get(worker);
      workers.delete(worker);
      greeted.delete(worker);
      servingWorkers.delete(worker);
      lastHeard.delete(worker);
      openConnections.delete(worker);
      clusterMetrics.retire(worker.id);
      if (stopping) return;
      // Before any worker serves, an exit is a start-up failure: restarting would loop forever.
      // Unless a stop signal ended it before it could say so (it came before its handlers were
      // set): then the start was cancelled, like the primary's own, which may come a moment later.
      if (!serving()) {
        failStartup(
          isStopSignal(signal)
            ? new CaStartCancelled(signal)
            : new RampartError('RAMPART_ERR_INTERNAL', `a signing worker exited during start-up (exit code ${String(code)}, signal ${String(signal)}); see its log`),
        );
        return;
      }
      const restartInMs = backoff.next(servingSince === undefined ? undefined : Date.now() - servingSince);
      logger.error({ event: 'worker-exited', code, signal, restartInMs }, `a signing worker exited; starting another in ${(restartInMs / 1000).toFixed(1)} s`);
      // A signal sent to the whole process group (Ctrl-C, systemd's stop) can end a worker just
      // before the primary hears it: no replacement once the primary is stopping too.
      setTimeout(() => {
        if (!stopping) fork(backoff);
      }, restartInMs).unref();
    });
  };
  const workerMetrics = (w: Worker, scope: 'all' | 'counters' = 'all'): Promise<MetricsJson> =>
    new Promise((resolve) => {
      const id = nextMetricId++;
      // A worker that does not answer (stuck, or gone) leaves no waiter behind.
      const timer = setTimeout(() => {
        metricWaiters.delete(id);
        resolve([]);
      }, 2000);
      metricWaiters.set(id, (m) => {
        clearTimeout(timer);
        metricWaiters.delete(id);
        if (workers.has(w)) clusterMetrics.observe(w.id, m as MetricsJson);
        resolve(m as MetricsJson);
      });
      sendTo(w, { t: 'rampart-metrics-request', id, scope });
    });
  const heardWithin = (w: Worker, ms: number): boolean => Date.now() - (lastHeard.get(w) ?? 0) <= ms;
  const refreshWorkerMetrics = setInterval(() => {
    for (const w of servingWorkers.keys()) {
      // Outside QA: a SIGSTOPped worker was never noticed. Readiness stayed 200, each scrape
      // waited 2 s for it, and the connections the kernel had already queued to it hung.
      // SIGKILL ends even a stopped process; the exit handler starts a replacement.
      if (!heardWithin(w, WORKER_SILENCE_KILL_MS)) {
        logger.error({ event: 'worker-unresponsive', workerPid: w.process.pid, silentMs: Date.now() - (lastHeard.get(w) ?? 0) }, `a signing worker has not answered for ${WORKER_SILENCE_KILL_MS / 1000} s (stopped or wedged); killing it so that another takes its place`);
        servingWorkers.delete(w);
        w.process.kill('SIGKILL');
        continue;
      }
      void workerMetrics(w, 'counters');
    }
  }, WORKER_METRICS_REFRESH_MS);
  refreshWorkerMetrics.unref();
  // Workers' counters and histograms are summed with the primary's gauges into one exposition.
  const monitoring = createMonitoringServer({
    registry: core.registry,
    metrics: async () => clusterMetrics.exposition(await core.registry.getMetricsAsJSON(), await Promise.all([...workers].map((w) => workerMetrics(w)))),
    ready: () => (stopping ? 'shutting down' : !runtime.ready ? 'no valid signing intermediate' : servingWorkers.size === 0 ? 'no signing worker serves the API yet' : ![...servingWorkers.keys()].some((w) => heardWithin(w, WORKER_SILENCE_UNREADY_MS)) ? 'no signing worker has answered the primary for 5 s' : true),
  });
  try {
    // The store and runtime took their time (a first root, say): a signal may have come meanwhile.
    throwIfCancelled(options.signal);
    // The dev issuer's files are made here, once, before any worker, so that workers only read
    // them: a worker stopped in the middle of writing them (a cancelled start) left a temp copy
    // of the issuer key behind, which the rollback of this start's files did not remove.
    if (config.authn.includes('dev')) await ensureDevIssuer(config.stateDir);
    await listenNamed('--monitoring-listen', config.monitoringListen, () => monitoring.listen({ host: config.monitoringListen.host, port: config.monitoringListen.port }));
  } catch (err) {
    await core.abandon();
    throw err;
  }
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const cancel = (): void => failStartup(cancellationOf(options.signal as AbortSignal));
  // As many workers as there are cores boot in parallel as fast as one, so a healthy CA has them
  // all serving from the start (the e2e and fleet figures count on it); more would only delay
  // the first one's report of a start that cannot succeed (94 s for --workers 256 on two cores).
  const firstBatch = Math.min(config.workers, Math.max(1, availableParallelism()));
  options.signal?.addEventListener('abort', cancel, { once: true });
  if (options.signal?.aborted) cancel();
  else {
    logger.info(
      { event: 'forking-workers', workers: firstBatch, of: config.workers },
      firstBatch < config.workers ? `starting ${firstBatch} signing worker(s); the others start once one serves the API` : 'starting the signing workers',
    );
    for (let i = 0; i < firstBatch; i++) fork(new RestartBackoff(RESTART_BACKOFF));
  }

  const monPort = (monitoring.server.address() as AddressInfo).port;
  /** `failedStart`: the CA never served, so a state this start created goes too (failed-start.ts). */
  const stopWorkersAndCore = async (failedStart = false): Promise<void> => {
    stopping = true;
    clearInterval(refreshWorkerMetrics);
    await Promise.all(
      [...workers].map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            // Asked, a worker runs its own shutdown: open long polls answer at once and kept-alive
            // clients are told to reconnect. A bare disconnect() waits for the worker's
            // connections to end by themselves, which kept a stopping CA up for the full 10 s.
            // A worker that failed at start-up may have dropped its channel already. One still
            // booting has no message handler yet and nothing to drain: a signal ends it at once.
            if (!greeted.has(w)) w.process.kill('SIGTERM');
            else if (w.isConnected()) w.send({ t: 'rampart-stop' } satisfies PrimaryMessage);
            else w.kill();
            setTimeout(() => {
              w.kill('SIGKILL');
              resolve();
            }, 10_000).unref();
          }),
      ),
    );
    await monitoring.close();
    // After every worker has exited: workers write the dev issuer's files into the state directory.
    await (failedStart ? core.abandon() : core.stop());
  };
  let url: string;
  try {
    url = await apiUrl;
  } catch (err) {
    await stopWorkersAndCore(true);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', cancel);
  }
  // The first worker serves, so the port and the state work: start the others. Not when a stop
  // was asked meanwhile: the CA stops as soon as this returns.
  if (config.workers > firstBatch && options.signal?.aborted !== true) {
    logger.info({ event: 'forking-workers', workers: config.workers - firstBatch, of: config.workers }, 'a signing worker serves; starting the others');
    for (let i = firstBatch; i < config.workers; i++) fork(new RestartBackoff(RESTART_BACKOFF));
  }
  return {
    apiUrl: url,
    monitoringUrl: `http://${formatHostPort({ host: config.monitoringListen.host === '0.0.0.0' ? '127.0.0.1' : config.monitoringListen.host, port: monPort })}`,
    runtime,
    stop: () => stopWorkersAndCore(),
  };
}
