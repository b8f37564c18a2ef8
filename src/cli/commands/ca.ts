/** `rampart ca`: run the certificate authority. */
import { loadCaConfig, type CaFlags } from '../../config/ca-config.js';
import { createLogger } from '../../observability/logger.js';
import { startCa } from '../../runtime/start-ca.js';
import { startClusterPrimary } from '../../runtime/cluster-ca.js';
import { isClusterWorker, startClusterWorker } from '../../runtime/cluster-worker.js';
import { isCaStartCancelled } from '../../runtime/start-cancelled.js';
import { ecPointImportRoute } from '../../core/pki/ec-point-import.js';
import type { CaConfig } from '../../config/ca-config.js';
import { parseFlags, type FlagSpec } from '../args.js';
import { caStartBanner, shellWord, type KubernetesBannerFacts } from './ca-banner.js';
import { resolve } from 'node:path';
import { waitForShutdownSignal } from '../signals.js';

// This file runs as src/cli/commands/ca.ts (tsx) or dist/cli/commands/ca.js: the bin is three up.
const RAMPART_COMMAND = `node ${shellWord(resolve(import.meta.dirname, '../../../bin/rampart.js'))}`;

export const CA_HELP = `Usage: rampart ca [flags]

Runs the certificate authority: issues SPIFFE X.509-SVIDs to authenticated workloads.
With no flags it runs on its embedded defaults: file state in certs/, the dev token issuer.

Flags:
  --state-dir DIR              state directory of the file store (default certs/)
  --store file|kubernetes      where CA state lives (default file)
  --listen HOST:PORT           API listener, TLS (default 127.0.0.1:8443)
  --monitoring-listen HOST:PORT  /healthz /readyz /metrics, plain HTTP (default 127.0.0.1:9090)
  --trust-domain TD            trust domain (default cluster.local)
  --authn LIST                 authenticators in order: dev,jwks,kubernetes,svid (default dev,svid)
  --default-ttl D  --min-ttl D  --max-ttl D   leaf lifetimes (default 1h, 5m, 24h; D is 90s, 5m, 1h,
                                              30d; a bare number is seconds)
  --root-ttl D  --intermediate-ttl D          CA lifetimes (default 365d, 30d)
  --plugged-ca DIR             use ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem from DIR;
                               the files are re-read every 5 s: a renewed intermediate signs from
                               then on, a new root is added as prepared
  --jwks-issuer URL  --jwks-file FILE  --jwks-url URL   settings of the jwks authenticator: its keys
                               come from the file or the URL (not both), else by OIDC discovery
  --kubeconfig FILE  --namespace NS                     Kubernetes access (in-cluster otherwise)
  --lease-duration D  --renew-deadline D  --retry-period D   leader election (default 15s, 10s, 2s)
  --watch-timeout D            each Kubernetes watch lives between D and 2D, then is opened anew;
                               one silent past that is dropped (default 5m, whole seconds,
                               1s to 1h)
  --state-check-interval D     how often each replica reads the state Secret to check that its
                               watch missed no write (default 1m, 1s to 1h)
  --serving-name NAME          extra DNS name/IP for the CA's serving certificate (repeatable)
  --auto-rotate true|false     run the root rotation schedule (default true)
  --bundle-refresh-interval D  how often agents refresh the bundle (default 60s)
  --max-in-flight N            certificate requests in flight per signing process before
                               answering 429 (default 1024; with --workers N, N times that in all)
  --workers N|auto             signing processes; auto = one per usable CPU, container CPU
                               limit included (default 1)
  --warm-up-requests N         before it listens, each signing process serves N certificate
                               requests to itself on a throwaway in-memory CA, so a fleet
                               arriving at a fresh CA meets optimised code (default 0 = none;
                               the manifests use 1000)
  --config FILE                JSON config file; its keys are in docs/configuration.md
                               (flags win over it; unknown keys are refused)
  --log-level LEVEL            pino level (default $RAMPART_LOG_LEVEL, else info)
`;

const SPEC: FlagSpec = {
  'state-dir': { type: 'string' },
  store: { type: 'string' },
  listen: { type: 'string' },
  'monitoring-listen': { type: 'string' },
  'trust-domain': { type: 'string' },
  authn: { type: 'string' },
  'default-ttl': { type: 'string' },
  'min-ttl': { type: 'string' },
  'max-ttl': { type: 'string' },
  'root-ttl': { type: 'string' },
  'intermediate-ttl': { type: 'string' },
  'plugged-ca': { type: 'string' },
  config: { type: 'string' },
  'jwks-issuer': { type: 'string' },
  'jwks-file': { type: 'string' },
  'jwks-url': { type: 'string' },
  kubeconfig: { type: 'string' },
  namespace: { type: 'string' },
  'serving-name': { type: 'string', multiple: true },
  'auto-rotate': { type: 'string' },
  'bundle-refresh-interval': { type: 'string' },
  'max-in-flight': { type: 'string' },
  workers: { type: 'string' },
  'warm-up-requests': { type: 'string' },
  'log-level': { type: 'string' },
  'lease-duration': { type: 'string' },
  'renew-deadline': { type: 'string' },
  'retry-period': { type: 'string' },
  'watch-timeout': { type: 'string' },
  'state-check-interval': { type: 'string' },
};

export async function runCa(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags<CaFlags & { help?: boolean }>(argv, SPEC);
  if (values.help) {
    process.stdout.write(CA_HELP);
    return 0;
  }
  const config = loadCaConfig(values, process.env);
  const logger = createLogger({ name: 'rampart-ca', level: config.logLevel });
  if (isClusterWorker()) {
    await startClusterWorker(config, logger.child({ worker: process.pid }));
    // The worker ends itself when the primary asks or goes away, or on a signal (cluster-ca.ts).
    await new Promise<void>((resolve) => process.once('disconnect', () => resolve()));
    return 0;
  }
  // Listening for SIGTERM from the start, instead of the default action killing the CA mid-write.
  // One that arrives before the API listens cancels the start: what it started is stopped (every
  // worker forked so far included) and what it created rolled back, as for a failed start. One
  // that arrives later stops the CA once it is up, keeping its state: it may have served.
  const cancel = new AbortController();
  const shutdown = waitForShutdownSignal().then((signal) => {
    cancel.abort(signal);
    return signal;
  });
  let ca;
  try {
    ca = config.workers > 1 ? await startClusterPrimary(config, logger, { signal: cancel.signal }) : await startCa(config, { logger, signal: cancel.signal });
  } catch (err) {
    if (!isCaStartCancelled(err)) throw err;
    // Asked to stop, and stopped: not an error, so exit 0, as the agent does and as a CA that was up.
    logger.info({ event: 'ca-start-cancelled', signal: err.signal }, `start cancelled by ${err.signal} before the CA served; nothing is left running`);
    logger.flush();
    process.stderr.write(`rampart ca: start cancelled by ${err.signal} before the CA served; nothing is left running\n`);
    return 0;
  }
  // What the CA holds now, whichever store it came from (the file store, or the Kubernetes Secret).
  const state = ca.runtime.state();
  const active = state.roots.find((r) => r.phase === 'active');
  const csrKeyImport = ecPointImportRoute();
  logger.info({ event: 'ca-started', apiUrl: ca.apiUrl, monitoringUrl: ca.monitoringUrl, trustDomain: config.trustDomain, authn: config.authn, workers: config.workers, rootFingerprint: active?.fingerprint, bundleSequence: state.sequence, csrKeyImport }, 'rampart CA is up');
  if (csrKeyImport === 'jwk') {
    // Same answers, about a fifth fewer certificates per core: worth an operator's notice after a node upgrade.
    logger.warn({ event: 'csr-key-import-fallback' }, "node's raw EC point import did not prove itself on this node; CSR keys are imported through JWK, which is slower");
  }
  process.stderr.write(caStartBanner(config, { apiUrl: ca.apiUrl, monitoringUrl: ca.monitoringUrl, rootFingerprint: active?.fingerprint, command: RAMPART_COMMAND, kubernetes: await kubernetesObjectNames(config) }));
  const signal = await shutdown;
  logger.info({ signal }, 'shutting down');
  await ca.stop();
  return 0;
}

/** The Kubernetes objects that hold a `--store kubernetes` CA's state and bundle, for its banner. */
async function kubernetesObjectNames(config: CaConfig): Promise<KubernetesBannerFacts | undefined> {
  if (config.store !== 'kubernetes') return undefined;
  // Already loaded by the Kubernetes store; imported here so a file-store CA never loads it.
  const [{ STATE_SECRET_NAME }, { ROOT_CERT_CONFIGMAP }] = await Promise.all([import('../../store/kubernetes-store.js'), import('../../k8s/root-cert-publisher.js')]);
  return { namespace: config.kubernetes.namespace, stateSecret: STATE_SECRET_NAME, rootCertConfigMap: ROOT_CERT_CONFIGMAP };
}
