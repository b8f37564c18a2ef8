/**
 * Composition root of `rampart ca`: builds the store, authenticators, runtime and both listeners
 * from a config, and returns handles to stop them. Used by the CLI and by integration tests.
 */
import type { AddressInfo } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { CaConfig } from '../config/ca-config.js';
import { formatHostPort } from '../config/values.js';
import { systemClock, type Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import { validatePluggedCa } from '../core/ca/plugged.js';
import type { PluggedCa } from '../core/ca/rotation.js';
import type { Authenticator, StateStore } from '../core/ports.js';
import { AuthenticatorChain } from '../authn/chain.js';
import { createDevAuthenticator, ensureDevIssuer } from '../authn/dev.js';
import { createJwksAuthenticator } from '../authn/jwks.js';
import { createSvidAuthenticator } from '../authn/svid.js';
import { createCaMetrics } from '../observability/ca-metrics.js';
import { buildCaApp } from '../server/app.js';
import { buildMonitoringApp } from '../server/monitoring.js';
import { apiTlsOptions, issueServingCertificate, type ServingCertificate } from '../server/tls.js';
import { FileStateStore } from '../store/file-store.js';
import { readPluggedCaFiles } from '../store/plugged-ca-files.js';
import { CaRuntime, type CrashPoint } from './ca-runtime.js';
import { startKubernetesSupport, type KubernetesSupport } from './kubernetes-support.js';

export interface RunningCa {
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  readonly runtime: CaRuntime;
  readonly registry: Registry;
  /** Current serving certificate chain (PEM), for tests. */
  servingCertificate(): ServingCertificate;
  stop(): Promise<void>;
}

export interface StartCaOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Overrides the store (tests); otherwise built from config. */
  readonly store?: StateStore;
}

const SERVING_TTL_MS = 24 * 3_600_000;

function crashHook(crashAt: string | undefined, logger: Logger): ((point: CrashPoint) => void) | undefined {
  if (!crashAt) return undefined;
  return (point) => {
    if (point !== crashAt) return;
    logger.warn({ point }, 'RAMPART_CRASH_AT reached: exiting abruptly as asked');
    process.kill(process.pid, 'SIGKILL');
  };
}

function loadPlugged(config: CaConfig, now: number): PluggedCa | undefined {
  return config.pluggedCaDir ? validatePluggedCa(readPluggedCaFiles(config.pluggedCaDir), now) : undefined;
}

export async function startCa(config: CaConfig, options: StartCaOptions): Promise<RunningCa> {
  const logger = options.logger;
  const clock = options.clock ?? systemClock;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'rampart_ca_process_' });
  const metrics = createCaMetrics(registry);
  const plugged = loadPlugged(config, clock.now());

  let k8s: KubernetesSupport | null = null;
  let store: StateStore;
  if (options.store) {
    store = options.store;
  } else if (config.store === 'kubernetes') {
    k8s = await startKubernetesSupport(config, { logger: logger.child({ component: 'kubernetes' }), registry, clock });
    store = k8s.store;
  } else {
    store = await FileStateStore.open(config.stateDir, { logger: logger.child({ component: 'store' }) });
  }

  const runtime = new CaRuntime({
    store,
    trustDomain: config.trustDomain,
    clock,
    logger: logger.child({ component: 'ca' }),
    metrics,
    ttlPolicy: config.ttl,
    lifetimes: config.lifetimes,
    ...(plugged ? { plugged } : {}),
    bundleRefreshIntervalMs: config.bundleRefreshIntervalMs,
    autoRotate: config.autoRotate,
    isLeader: () => k8s?.isLeader() ?? true,
    ...(crashHook(config.crashAt, logger) ? { crashPoint: crashHook(config.crashAt, logger) as (p: CrashPoint) => void } : {}),
  });
  try {
    await runtime.start();
  } catch (err) {
    await store.close();
    await k8s?.stop();
    throw err;
  }
  if (plugged && !runtime.state().roots.some((r) => r.fingerprint === plugged.rootFingerprint)) {
    logger.warn({ root: plugged.rootFingerprint }, 'the plugged-in CA differs from the stored roots; it was added as a prepared root, activate it to switch');
    await runtime.preparePlugged(plugged);
  }
  k8s?.followBundle(runtime);

  const svid = createSvidAuthenticator({
    trustAnchors: () => ({ trustDomain: config.trustDomain, rootsPem: runtime.current().bundlePems }),
    clock,
    logger: logger.child({ component: 'authn-svid' }),
  });
  const authenticators: Authenticator[] = [];
  for (const name of config.authn) {
    if (name === 'dev') {
      await ensureDevIssuer(config.stateDir);
      authenticators.push(createDevAuthenticator({ stateDir: config.stateDir, trustDomain: config.trustDomain, clock, logger: logger.child({ component: 'authn-dev' }) }));
    } else if (name === 'jwks') {
      const j = config.jwks;
      if (!j) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', '--authn jwks needs jwks settings');
      authenticators.push(
        createJwksAuthenticator({
          issuer: j.issuer,
          trustDomain: config.trustDomain,
          audience: j.audience,
          source: j.file ? { kind: 'file', path: j.file } : j.url ? { kind: 'url', url: j.url, ...(j.caFile ? { caFile: j.caFile } : {}) } : { kind: 'discovery', ...(j.caFile ? { caFile: j.caFile } : {}) },
          clock,
          logger: logger.child({ component: 'authn-jwks' }),
        }),
      );
    } else if (name === 'kubernetes') {
      k8s ??= await startKubernetesSupport(config, { logger: logger.child({ component: 'kubernetes' }), registry, clock, authOnly: true });
      authenticators.push(k8s.authenticator());
    } else {
      authenticators.push(svid);
    }
  }
  const chain = new AuthenticatorChain(authenticators, { logger: logger.child({ component: 'authn' }) });

  const servingNames = ['localhost', '127.0.0.1', '::1', config.listen.host, ...config.servingNames].filter((n) => n !== '0.0.0.0' && n !== '::');
  let serving = issueServingCertificate(runtime.current(), { trustDomain: config.trustDomain, names: servingNames, ttlMs: SERVING_TTL_MS, clock });
  const app = buildCaApp(
    {
      runtime,
      authenticator: chain,
      svidAuthenticator: svid,
      adminIdentities: config.adminIdentities,
      metrics,
      logger: logger.child({ component: 'api' }),
      clock,
      maxInFlight: config.maxInFlight,
      bundleRefreshHintSeconds: Math.round(config.bundleRefreshIntervalMs / 1000),
    },
    apiTlsOptions(serving, runtime.current().bundlePems),
  );
  const refreshServing = (): void => {
    serving = issueServingCertificate(runtime.current(), { trustDomain: config.trustDomain, names: servingNames, ttlMs: SERVING_TTL_MS, clock });
    (app.server as HttpsServer).setSecureContext(apiTlsOptions(serving, runtime.current().bundlePems));
    logger.info({ event: 'serving-certificate-renewed', notAfter: new Date(serving.notAfter).toISOString() }, 'CA serving certificate re-issued');
  };
  // A new signer (activate, intermediate renewal) or bundle means a new serving cert and CA list;
  // both are rare, so re-issuing on every state change keeps this simple.
  runtime.onChange(() => refreshServing());
  const servingTimer = setInterval(() => {
    if (clock.now() >= serving.notBefore + (serving.notAfter - serving.notBefore) / 2) refreshServing();
  }, 30_000);
  servingTimer.unref();

  const monitoring = buildMonitoringApp({
    registry,
    ready: () => (runtime.ready ? true : 'no valid signing intermediate'),
  });
  await app.listen({ host: config.listen.host, port: config.listen.port });
  await monitoring.listen({ host: config.monitoringListen.host, port: config.monitoringListen.port });
  const apiPort = (app.server.address() as AddressInfo).port;
  const monPort = (monitoring.server.address() as AddressInfo).port;
  const apiHost = config.listen.host === '0.0.0.0' ? '127.0.0.1' : config.listen.host;
  const monHost = config.monitoringListen.host === '0.0.0.0' ? '127.0.0.1' : config.monitoringListen.host;

  let stopped = false;
  return {
    apiUrl: `https://${formatHostPort({ host: apiHost === '127.0.0.1' ? 'localhost' : apiHost, port: apiPort })}`,
    monitoringUrl: `http://${formatHostPort({ host: monHost, port: monPort })}`,
    runtime,
    registry,
    servingCertificate: () => serving,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(servingTimer);
      await runtime.stop();
      await app.close();
      await monitoring.close();
      await k8s?.stop();
      await store.close();
    },
  };
}
