/**
 * Kubernetes wiring of the CA: Secret-backed state store, TokenReview authenticator, Lease-based
 * leader election (only the leader runs rotations and publishes ConfigMaps) and the root-cert
 * ConfigMap publisher.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { CaConfig } from '../config/ca-config.js';
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import { bundleToPem } from '../core/ca/trust-bundle.js';
import type { Authenticator, StateStore } from '../core/ports.js';
import { KubernetesAuthenticator } from '../authn/kubernetes.js';
import { createKubeClients, type KubeClients, type KubeClientSource } from '../k8s/client.js';
import { LeaderElector } from '../k8s/leader-election.js';
import type { PeerSightings } from '../core/ca/propagation.js';
import { ConfigMapPropagationExchange } from '../k8s/propagation-exchange.js';
import { RootCertPublisher } from '../k8s/root-cert-publisher.js';
import { KubernetesStateStore } from '../store/kubernetes-store.js';
import type { CaRuntime } from './ca-runtime.js';

export interface KubernetesSupport {
  readonly store: StateStore;
  authenticator(): Authenticator;
  isLeader(): boolean;
  /** The other replicas' agent sightings, for judging propagation over every agent. */
  propagationPeers(): readonly PeerSightings[];
  /** Keeps the ConfigMaps current with the runtime's bundle while this replica leads, and shares its sightings. */
  followBundle(runtime: CaRuntime): void;
  stop(): Promise<void>;
}

/**
 * Leader-election timings (client-go's names). Defaults: 15 s lease, 10 s renew deadline, 2 s
 * retry. A shorter lease means faster failover after a replica dies, and more Lease writes.
 */
export interface LeaderElectionTimings {
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
}

/** Optional `kubernetes.leaderElection` the config layer may carry (read here if present). */
function configuredTimings(config: CaConfig): LeaderElectionTimings | undefined {
  return config.kubernetes.leaderElection;
}

function clientSource(config: CaConfig): KubeClientSource {
  const k = config.kubernetes;
  if (k.kubeconfig) return { kind: 'kubeconfig', path: k.kubeconfig };
  if (k.inClusterHost && k.inClusterPort) return { kind: 'in-cluster', host: k.inClusterHost, port: k.inClusterPort };
  throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'Kubernetes access needs --kubeconfig FILE (or KUBECONFIG), or in-cluster KUBERNETES_SERVICE_HOST/PORT');
}

/**
 * Connects to the API server. With `authOnly` (file store plus the kubernetes authenticator) it
 * runs no store, election or publisher. `options.logger` must carry no `component`: this module
 * names its parts' components, and a child's binding is added next to its parent's, not over
 * it, so a second one would make lines with the key twice.
 */
export async function startKubernetesSupport(
  config: CaConfig,
  options: { logger: Logger; registry: Registry; clock: Clock; authOnly?: boolean; clients?: KubeClients; leaderElection?: LeaderElectionTimings },
): Promise<KubernetesSupport> {
  const clients = options.clients ?? createKubeClients(clientSource(config));
  const namespace = config.kubernetes.namespace;
  const logger = options.logger.child({ component: 'kubernetes' });
  let authenticator: KubernetesAuthenticator | null = null;
  const getAuthenticator = (): Authenticator => {
    authenticator ??= new KubernetesAuthenticator({
      api: clients.authentication,
      trustDomain: config.trustDomain,
      audiences: [config.kubernetes.audience],
      clock: options.clock,
      logger: options.logger.child({ component: 'authn-kubernetes' }),
      registry: options.registry,
      rate: { perSecond: config.kubernetes.tokenReviewRatePerSecond },
    });
    return authenticator;
  };
  if (options.authOnly) {
    return {
      get store(): StateStore {
        throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'the Kubernetes store is not enabled (--store kubernetes)');
      },
      authenticator: getAuthenticator,
      isLeader: () => true,
      propagationPeers: () => [],
      followBundle: () => undefined,
      stop: async () => undefined,
    };
  }

  const { watchTimeoutMs, stateCheckIntervalMs } = config.kubernetes;
  const store = new KubernetesStateStore({
    core: clients.core,
    kubeConfig: clients.kubeConfig,
    namespace,
    logger: options.logger.child({ component: 'store' }),
    ...(watchTimeoutMs === undefined ? {} : { watchTimeoutMs }),
    ...(stateCheckIntervalMs === undefined ? {} : { stateCheckIntervalMs }),
  });
  const publisher = new RootCertPublisher({
    core: clients.core,
    kubeConfig: clients.kubeConfig,
    logger: options.logger.child({ component: 'root-cert-publisher' }),
    ...(watchTimeoutMs === undefined ? {} : { watchTimeoutMs }),
  });
  let runtime: CaRuntime | null = null;
  const timings = options.leaderElection ?? configuredTimings(config) ?? {};
  const elector = new LeaderElector({
    coordination: clients.coordination,
    namespace,
    identity: config.kubernetes.identity,
    ...(timings.leaseDurationMs === undefined ? {} : { leaseDurationMs: timings.leaseDurationMs }),
    ...(timings.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: timings.renewDeadlineMs }),
    ...(timings.retryPeriodMs === undefined ? {} : { retryPeriodMs: timings.retryPeriodMs }),
    clock: options.clock,
    logger: options.logger.child({ component: 'leader-election' }),
    onStartedLeading: () => {
      logger.info({ event: 'leader-elected', identity: config.kubernetes.identity }, 'this replica leads: running rotations and publishing root-cert ConfigMaps');
      if (runtime) publisher.setBundle(bundleToPem(runtime.current().bundle));
      publisher.start();
      void runtime?.tick();
    },
    onStoppedLeading: () => {
      logger.info({ event: 'leader-lost', identity: config.kubernetes.identity }, 'this replica no longer leads');
      publisher.stop();
    },
  });
  elector.start();
  const exchange = new ConfigMapPropagationExchange({
    core: clients.core,
    namespace,
    replica: config.kubernetes.identity,
    podUid: config.kubernetes.podUid,
    clock: options.clock,
    logger: logger.child({ component: 'propagation-exchange' }),
    // Peers count a replica alive for two refresh intervals; a heartbeat at half of one keeps it so.
    heartbeatMs: Math.min(30_000, config.bundleRefreshIntervalMs / 2),
    intervalMs: Math.min(5_000, config.bundleRefreshIntervalMs / 4),
  });
  return {
    store,
    authenticator: getAuthenticator,
    isLeader: () => elector.isLeader,
    propagationPeers: () => exchange.peers(),
    followBundle(r: CaRuntime) {
      runtime = r;
      publisher.setBundle(bundleToPem(r.current().bundle));
      r.onChange((context) => publisher.setBundle(bundleToPem(context.bundle)));
      exchange.start(() => r.shareSightings(config.kubernetes.identity));
    },
    async stop() {
      publisher.stop();
      await exchange.stop();
      await elector.stop({ release: true });
    },
  };
}
