/**
 * Composition root of a single-process `rampart ca`: store, runtime (the single writer), API and
 * monitoring listeners. Used by the CLI (with --workers 1) and by integration tests.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { CaConfig } from '../config/ca-config.js';
import { formatHostPort } from '../config/values.js';
import { systemClock, type Clock } from '../core/clock.js';
import { validatePluggedCa } from '../core/ca/plugged.js';
import type { PluggedCa } from '../core/ca/rotation.js';
import type { StateStore } from '../core/ports.js';
import { warmUpBeforeServing } from './issue-path-warm-up.js';
import { createCaMetrics, type CaMetrics } from '../observability/ca-metrics.js';
import { listenNamed } from '../server/listen-failure.js';
import { createMonitoringServer } from '../server/monitoring.js';
import type { ServingCertificate } from '../server/tls.js';
import { DEV_JWKS_FILE, DEV_KEY_FILE } from '../authn/jwt-dev-issuer.js';
import { FileStateStore } from '../store/file-store.js';
import { readPluggedCaFiles } from '../store/plugged-ca-files.js';
import { watchPluggedCaDir } from './plugged-ca-watch.js';
import { CaRuntime, type CrashPoint } from './ca-runtime.js';
import { closeStoreAfterFailedStart } from './failed-start.js';
import type { KubernetesSupport } from './kubernetes-support.js';
import { startApi, type RunningApi } from './start-api.js';
import { throwIfCancelled } from './start-cancelled.js';

export interface RunningCa {
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  readonly runtime: CaRuntime;
  readonly registry: Registry;
  /** Current serving certificate (PEM chain and key), for tests. */
  servingCertificate(): ServingCertificate;
  stop(): Promise<void>;
}

export interface StartCaOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Overrides the store (tests); otherwise built from config. */
  readonly store?: StateStore;
  /** The API's TLS handshake timeout (tests; default in start-api.ts). */
  readonly apiHandshakeTimeoutMs?: number;
  /**
   * Cancels the start (SIGTERM while it runs) until the API listens: the start then stops what it
   * started and rolls back what it created, as a failed start does, and throws CaStartCancelled.
   */
  readonly signal?: AbortSignal;
}

/** The state-owning half of a CA: store, runtime, Kubernetes support. Shared with the cluster primary. */
export interface CaCore {
  readonly runtime: CaRuntime;
  readonly registry: Registry;
  readonly metrics: CaMetrics;
  readonly kubernetes: KubernetesSupport | null;
  stop(): Promise<void>;
  /** Stops after the rest of the start failed: a state this start created is removed (failed-start.ts). */
  abandon(): Promise<void>;
}

function crashHook(crashAt: string | undefined, logger: Logger): ((point: CrashPoint) => void) | undefined {
  if (!crashAt) return undefined;
  return (point) => {
    if (point !== crashAt) return;
    logger.warn({ point }, 'RAMPART_CRASH_AT reached: exiting abruptly as asked');
    process.kill(process.pid, 'SIGKILL');
  };
}

/** Loaded only when used: @kubernetes/client-node costs seconds of start-up and tens of MB. */
async function kubernetesSupport(...args: Parameters<typeof import('./kubernetes-support.js').startKubernetesSupport>): Promise<KubernetesSupport> {
  const { startKubernetesSupport } = await import('./kubernetes-support.js');
  return startKubernetesSupport(...args);
}

function loadPlugged(config: CaConfig, now: number): PluggedCa | undefined {
  return config.pluggedCaDir ? validatePluggedCa(readPluggedCaFiles(config.pluggedCaDir), config.trustDomain, now) : undefined;
}

/** Says which plugged-in CA this process loaded and where its root stands; no root was created. */
function logPluggedLoaded(logger: Logger, runtime: CaRuntime, plugged: PluggedCa): void {
  const state = runtime.state();
  const phase = state.roots.find((r) => r.fingerprint === plugged.rootFingerprint)?.phase;
  logger.info(
    {
      event: 'plugged-ca-loaded',
      fingerprint: plugged.rootFingerprint,
      phase,
      chainNotAfter: new Date(plugged.intermediate.notAfter).toISOString(),
      sequence: state.sequence,
      newState: runtime.createdState,
    },
    runtime.createdState
      ? 'started a new CA state with the plugged-in CA as its active root (its root comes from --plugged-ca; none was created)'
      : `loaded the plugged-in CA; its root is ${phase ?? 'not'} in the trust bundle`,
  );
}

/** Opens the store and starts the runtime (the single writer of CA state). */
/** Below this a leaf lifetime is for tests: DESIGN section 3 sets the floor at 5 min. */
const SHORTEST_SERVING_TTL_MS = 60_000;

/**
 * Leaf lifetimes of seconds are allowed, since tests of renewal need them, but a mesh run on them
 * renews all the time and, as NotAfter is whole seconds, can be handed a certificate that has
 * already expired (outside QA: --min-ttl 1s made agents fail readiness 17 times in 20 s).
 */
function warnOfTestTtls(config: CaConfig, logger: Logger): void {
  if (config.ttl.defaultTtlMs >= SHORTEST_SERVING_TTL_MS && config.ttl.minTtlMs >= SHORTEST_SERVING_TTL_MS) return;
  logger.warn(
    { event: 'ttl-for-tests', minTtlMs: config.ttl.minTtlMs, defaultTtlMs: config.ttl.defaultTtlMs },
    'leaf lifetimes under 1m (--min-ttl, --default-ttl) are for tests: agents renew at half-life, and a certificate of a few seconds can expire before it is used',
  );
}

export async function startCaCore(config: CaConfig, options: StartCaOptions): Promise<CaCore> {
  const logger = options.logger;
  const clock = options.clock ?? systemClock;
  const registry = new Registry();
  // prom-client's names already start with process_ or nodejs_, so the prefix is only the component.
  collectDefaultMetrics({ register: registry, prefix: 'rampart_ca_' });
  const metrics = createCaMetrics(registry);
  warnOfTestTtls(config, logger);
  const plugged = loadPlugged(config, clock.now());

  let kubernetes: KubernetesSupport | null = null;
  let store: StateStore;
  if (options.store) {
    store = options.store;
  } else if (config.store === 'kubernetes') {
    kubernetes = await kubernetesSupport(config, { logger, registry, clock });
    store = kubernetes.store;
  } else {
    // The dev issuer's files are created by this start too (start-api.ts), in every worker.
    store = await FileStateStore.open(config.stateDir, { logger: logger.child({ component: 'store' }), startFiles: [DEV_KEY_FILE, DEV_JWKS_FILE] });
  }
  if (!kubernetes && config.authn.includes('kubernetes')) {
    kubernetes = await kubernetesSupport(config, { logger, registry, clock, authOnly: true });
  }
  const hook = crashHook(config.crashAt, logger);
  const runtime = new CaRuntime({
    store,
    trustDomain: config.trustDomain,
    clock,
    logger: logger.child({ component: 'ca' }),
    metrics,
    ttlPolicy: config.ttl,
    lifetimes: config.lifetimes,
    ...(plugged ? { plugged } : {}),
    ...(config.pluggedCaDir ? { pluggedSource: watchPluggedCaDir(config.pluggedCaDir, config.trustDomain, logger.child({ component: 'plugged-ca' }), plugged) } : {}),
    bundleRefreshIntervalMs: config.bundleRefreshIntervalMs,
    autoRotate: config.autoRotate,
    isLeader: () => kubernetes?.isLeader() ?? true,
    propagationPeers: () => kubernetes?.propagationPeers() ?? [],
    ...(hook ? { crashPoint: hook } : {}),
  });
  const abandon = async (): Promise<void> => {
    let root: string | undefined;
    try {
      root = runtime.state().roots.find((r) => r.phase === 'active')?.fingerprint;
    } catch {
      // The start failed before any state was loaded or created.
    }
    await runtime.stop();
    await kubernetes?.stop();
    await closeStoreAfterFailedStart(store, logger.child({ component: 'store' }), root);
  };
  try {
    await runtime.start();
  } catch (err) {
    await abandon();
    throw err;
  }
  if (plugged && !runtime.state().roots.some((r) => r.fingerprint === plugged.rootFingerprint)) {
    try {
      await runtime.preparePlugged(plugged);
    } catch (err) {
      // E.g. another root is already prepared: say so and leave nothing running or locked.
      await abandon();
      throw err;
    }
    logger.warn({ root: plugged.rootFingerprint }, 'the plugged-in CA differs from the stored roots; it was added as a prepared root, activate it to switch');
  }
  if (plugged) logPluggedLoaded(logger, runtime, plugged);
  kubernetes?.followBundle(runtime);
  return {
    runtime,
    registry,
    metrics,
    kubernetes,
    async stop() {
      await runtime.stop();
      await kubernetes?.stop();
      await store.close();
    },
    abandon,
  };
}

export async function startCa(config: CaConfig, options: StartCaOptions): Promise<RunningCa> {
  const logger = options.logger;
  const clock = options.clock ?? systemClock;
  const core = await startCaCore(config, options);
  const kube = core.kubernetes;
  let api: RunningApi;
  try {
    // The store and runtime took their time (a first root, say): a signal may have come meanwhile.
    throwIfCancelled(options.signal);
    await warmUpBeforeServing(config, logger, clock);
    throwIfCancelled(options.signal);
    api = await startApi(config, core.runtime, {
      logger,
      clock,
      metrics: core.metrics,
      ...(kube ? { kubernetesAuthenticator: () => kube.authenticator() } : {}),
      ...(options.apiHandshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.apiHandshakeTimeoutMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    await core.abandon();
    throw err;
  }
  let stopped = false;
  // Not ready from the moment stopping begins: the API stops accepting before monitoring closes.
  const monitoring = createMonitoringServer({ registry: core.registry, ready: () => (stopped ? 'shutting down' : core.runtime.ready ? true : 'no valid signing intermediate') });
  try {
    await listenNamed('--monitoring-listen', config.monitoringListen, () => monitoring.listen({ host: config.monitoringListen.host, port: config.monitoringListen.port }));
  } catch (err) {
    // Leave nothing serving or locked: a CA without monitoring would look dead to its probes.
    await api.stop();
    await core.abandon();
    throw err;
  }
  const monPort = (monitoring.server.address() as AddressInfo).port;
  const monHost = config.monitoringListen.host === '0.0.0.0' ? '127.0.0.1' : config.monitoringListen.host;
  return {
    apiUrl: api.url,
    monitoringUrl: `http://${formatHostPort({ host: monHost, port: monPort })}`,
    runtime: core.runtime,
    registry: core.registry,
    servingCertificate: () => api.servingCertificate(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await api.stop();
      await monitoring.close();
      await core.stop();
    },
  };
}
