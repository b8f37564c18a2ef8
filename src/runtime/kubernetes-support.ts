/**
 * Kubernetes wiring of the CA: Secret-backed state store, TokenReview authenticator, Lease-based
 * leader election and the root-cert ConfigMap publisher.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { CaConfig } from '../config/ca-config.js';
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import type { Authenticator, StateStore } from '../core/ports.js';
import type { CaRuntime } from './ca-runtime.js';

export interface KubernetesSupport {
  readonly store: StateStore;
  authenticator(): Authenticator;
  isLeader(): boolean;
  followBundle(runtime: CaRuntime): void;
  stop(): Promise<void>;
}

export async function startKubernetesSupport(
  config: CaConfig,
  options: { logger: Logger; registry: Registry; clock: Clock; authOnly?: boolean },
): Promise<KubernetesSupport> {
  void config;
  void options;
  throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'Kubernetes support is not wired into this build yet');
}
