/**
 * Composition root of `rampart agent`: token source, CA clients, certificate manager, the
 * monitoring listener and the inbound/outbound proxies. Used by the CLI and by tests.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { makeDirectoriesSync } from '../store/make-directories.js';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { CaClient } from '../client/ca-client.js';
import { readTrustFile } from '../client/trust-file.js';
import type { AgentConfig } from '../config/agent-config.js';
import { formatHostPort } from '../config/values.js';
import { systemClock, type Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import { listenNamed } from '../server/listen-failure.js';
import { createMonitoringServer } from '../server/monitoring.js';
import { createAgentMetrics, createAgentRegistry } from './agent-metrics.js';
import { CertificateManager } from './certificate-manager.js';
import { OUTPUT_DIR_MODE } from './output-writer.js';
import { startInbound, startOutbound, type InboundProxy, type OutboundProxy } from './proxy/index.js';
import { proxyMetrics } from './proxy/metrics.js';
import { AgentStartCancelled } from './start-cancelled.js';
import { fileTokenSource } from './token-source.js';

/** Options that are not operator settings. */
export interface StartAgentOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Defaults to a fresh registry with process metrics. */
  readonly registry?: Registry;
  /** Backoff bounds of renewals and bundle polls (default 1 s to 60 s). */
  readonly retry?: { readonly baseMs?: number; readonly maxMs?: number };
  /** Seconds each trust-bundle long-poll waits at the CA (default 20). */
  readonly bundleWaitSeconds?: number;
  /**
   * Aborting it while the agent starts stops everything started so far and rejects with
   * {@link AgentStartCancelled}; once the agent is up it is ignored (use `stop()`).
   */
  readonly signal?: AbortSignal;
}

/** A running agent. */
export interface RunningAgent {
  readonly manager: CertificateManager;
  readonly registry: Registry;
  readonly monitoringUrl: string;
  readonly inbound: readonly InboundProxy[];
  readonly outbound: readonly OutboundProxy[];
  /** Milliseconds from start to the first certificate. */
  readonly firstCertificateMs: number;
  /** Stops accepting, drains open connections for up to `drainMs`, stops renewing. */
  stop(options?: { drainMs?: number }): Promise<void>;
}

const STICKY_BIT = 0o1000;

/**
 * The output directory must be usable before the agent asks for a certificate: an application
 * waiting for files that can never be written is worse off than a pod that fails to start.
 */
function checkOutDir(outDir: string, logger: Logger): void {
  let mode: number;
  try {
    makeDirectoriesSync(outDir, OUTPUT_DIR_MODE);
    const info = statSync(outDir);
    if (!info.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(outDir, constants.W_OK | constants.X_OK);
    mode = info.mode;
  } catch (err) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `--out-dir ${outDir} cannot be used (${(err as NodeJS.ErrnoException).code ?? 'error'}); it must be a directory this agent can write`);
  }
  // Whoever can write the directory can swap ..data for files of their own, a key included; the
  // sticky bit (as on /tmp) stops them renaming over ours, so only its absence is warned of.
  if ((mode & 0o022) !== 0 && (mode & STICKY_BIT) === 0) {
    logger.warn({ event: 'out-dir-writable-by-others', outDir, mode: `0${(mode & 0o7777).toString(8)}` }, `--out-dir ${outDir} is writable by other users, who could replace the certificate and key the workload reads; make it 0755 or tighter (chmod go-w)`);
  }
}


/**
 * Starts the agent and resolves once it holds its first certificate and every listener is up.
 * Bad settings, an unreadable token file and a CA that gives no certificate within
 * `config.startupTimeoutMs` reject with a RampartError saying what to fix; `options.signal`
 * cancels it (see {@link StartAgentOptions.signal}).
 */
export async function startAgent(config: AgentConfig, options: StartAgentOptions): Promise<RunningAgent> {
  // process.hrtime, not performance.now: the global `performance` loads node's perf_hooks into the agent (about 200 KiB).
  const startedAt = process.hrtime.bigint();
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  const registry = options.registry ?? createAgentRegistry();
  const cancelled = (): boolean => options.signal?.aborted === true;
  if (cancelled()) throw new AgentStartCancelled('before-first-certificate');

  let bootstrap = readTrustFile(config.caBundleFile, '--ca-bundle');
  if (config.outDir !== null) checkOutDir(config.outDir, logger);
  const tokenSource = fileTokenSource(config.tokenFile);
  // Fail fast on a token file that is wrong from the start; later failures are retried.
  await tokenSource.read();

  let manager: CertificateManager | null = null;
  // The bootstrap file as it is now (kubelet updates the ConfigMap; a local CA its root-cert.pem).
  const bootstrapNow = (): string => {
    try {
      bootstrap = readTrustFile(config.caBundleFile, '--ca-bundle');
    } catch {
      // Keep the copy read last.
    }
    return bootstrap;
  };
  const caBundle = (): string => manager?.trustBundlePem() || bootstrapNow();
  // Held roots can fall behind the CA's serving certificate: an agent suspended, or cut off,
  // through a prepare and activate learns of the new root from the bundle, which it can no longer
  // fetch. The bootstrap file is then the way back in (the CA client adds its missing roots).
  const onTrustRecovered = (): void =>
    logger.warn({ event: 'ca-trust-recovered', caBundleFile: config.caBundleFile }, "the CA's certificate chains to a root missing from the held trust bundle (a root activation this agent missed); reached the CA with --ca-bundle's roots");
  const clientBase = { url: config.caUrl, caBundle, agentId: config.agentId, recoveryCaBundle: bootstrapNow, onTrustRecovered };
  // Certificates are requested with the token alone: were the SVID also offered, a CA that
  // rejects the token would renew the old identity from the certificate and hide the problem.
  const certificateClient = new CaClient(clientBase);
  const bundleClient = new CaClient({ ...clientBase, clientCertificate: () => manager?.clientCertificate() ?? null });
  manager = new CertificateManager({
    certificateClient,
    bundleClient,
    tokenSource,
    clock,
    logger,
    metrics: createAgentMetrics(registry),
    ttlSeconds: config.ttlSeconds,
    outDir: config.outDir,
    ...(options.retry ? { retry: options.retry } : {}),
    ...(options.bundleWaitSeconds === undefined ? {} : { bundleWaitSeconds: options.bundleWaitSeconds }),
  });
  const m = manager;
  const throwIfCancelled = (): void => {
    if (cancelled()) throw new AgentStartCancelled(m.current() === null ? 'before-first-certificate' : 'after-first-certificate');
  };
  // A signal must not wait for the first certificate, which may take until the start-up
  // deadline: stopping the manager ends that wait at once, and no certificate arrives after it.
  const stopManagerOnCancel = (): void => void m.stop();
  options.signal?.addEventListener('abort', stopManagerOnCancel, { once: true });

  // Set when the agent starts to stop: its listeners refuse new connections from then on, so a
  // probe must stop sending traffic its way (outside QA: /readyz said ready while draining).
  let draining = false;
  const monitoring = createMonitoringServer({ registry, ready: () => (draining ? 'shutting down: draining open connections, refusing new ones' : (m.notReadyReason() ?? true)) });
  const inbound: InboundProxy[] = [];
  const outbound: OutboundProxy[] = [];
  const stopAll = async (drainMs: number): Promise<void> => {
    draining = true;
    await Promise.all([...inbound.map((p) => p.close({ drainMs })), ...outbound.map((p) => p.close({ drainMs }))]);
    await m.stop();
    await monitoring.close();
  };

  try {
    throwIfCancelled();
    // The proxy metrics exist from the start, at zero, whether or not this agent proxies (DESIGN section 10).
    await proxyMetrics(registry);
    throwIfCancelled();
    await listenNamed('--monitoring-listen', config.monitoringListen, () => monitoring.listen({ host: config.monitoringListen.host, port: config.monitoringListen.port }));
    throwIfCancelled();
    m.start();
    logger.info({ event: 'agent-starting', caUrl: config.caUrl, tokenFile: config.tokenFile, outDir: config.outDir, agentId: config.agentId }, 'requesting the first certificate');
    await m.waitForFirstCertificate(config.startupTimeoutMs);
    throwIfCancelled();
    const firstCertificateMs = Number(process.hrtime.bigint() - startedAt) / 1e6;
    const common = { credentials: m, logger, registry, clock, tunnel: config.tunnel };
    for (const route of config.inbound) {
      inbound.push(await listenNamed('--inbound', route.listen, () => startInbound({ ...common, listen: route.listen, backend: route.backend, allow: config.allow })));
      throwIfCancelled();
    }
    for (const route of config.outbound) {
      outbound.push(await listenNamed('--outbound', route.listen, () => startOutbound({ ...common, listen: route.listen, upstream: route.upstream, expectedId: route.expectedId })));
      throwIfCancelled();
    }
    const monPort = (monitoring.server.address() as AddressInfo).port;
    const monHost = config.monitoringListen.host === '0.0.0.0' ? '127.0.0.1' : config.monitoringListen.host === '::' ? '::1' : config.monitoringListen.host;
    const monitoringUrl = `http://${formatHostPort({ host: monHost, port: monPort })}`;
    logger.info({ event: 'agent-started', spiffeId: m.current()?.spiffeId, firstCertificateMs: Math.round(firstCertificateMs), monitoringUrl, inbound: inbound.map((p) => formatHostPort(p.address)), outbound: outbound.map((p) => formatHostPort(p.address)) }, 'rampart agent is up');
    let stopping: Promise<void> | undefined;
    return {
      manager: m,
      registry,
      monitoringUrl,
      inbound,
      outbound,
      firstCertificateMs,
      stop(opts) {
        stopping ??= stopAll(opts?.drainMs ?? config.drainTimeoutMs);
        return stopping;
      },
    };
  } catch (err) {
    await stopAll(0).catch(() => undefined);
    // Whatever the wait ended with (the manager stopped, a listener failing meanwhile), a
    // cancelled start-up reports the cancellation.
    throwIfCancelled();
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', stopManagerOnCancel);
  }
}
