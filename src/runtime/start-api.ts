/**
 * Starts the CA's HTTPS API on top of a CaAuthority: authenticator chain, the serving SVID (kept
 * current as the signer changes), and the fastify app. Used by the single-process CA and by every
 * node:cluster worker.
 */
import type { TLSSocket } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { CaConfig } from '../config/ca-config.js';
import { formatHostPort } from '../config/values.js';
import type { Clock } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';
import type { Authenticator } from '../core/ports.js';
import { AuthenticatorChain } from '../authn/chain.js';
import { createDevAuthenticator, ensureDevIssuer } from '../authn/dev.js';
import { createJwksAuthenticator } from '../authn/jwks.js';
import { readJwksFileNow } from '../authn/jwt-key-source.js';
import { createSvidAuthenticator } from '../authn/svid.js';
import type { CaMetrics } from '../observability/ca-metrics.js';
import { buildCaApp } from '../server/app.js';
import { balanceConnections, type ConnectionBalance } from '../server/connection-balance.js';
import { admitHandshakesInOrder } from '../server/handshake-admission.js';
import { createClientChainGuard } from '../tls/client-chain-guard.js';
import { listenNamed } from '../server/listen-failure.js';
import { answerPlainHttpRequests } from '../server/plain-http-answer.js';
import { apiTlsOptions, issueServingCertificate, type ServingCertificate } from '../server/tls.js';
import type { CaAuthority } from './ca-authority.js';
import { throwIfCancelled } from './start-cancelled.js';

const SERVING_TTL_MS = 24 * 3_600_000;
// Enough handshakes in flight to keep a core busy across loopback and LAN round trips; the
// rest of a connecting fleet waits its turn (see handshake-admission.ts).
const HANDSHAKES_IN_PROGRESS = 64;
// Node's default is 120 s. A client admitted to the handshake that then says nothing would hold
// a file descriptor that long; agents give up on a request after 15 s anyway, and the agent's
// inbound listener uses the same 10 s.
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface RunningApi {
  readonly url: string;
  readonly port: number;
  /** This worker's side of spreading connections over the cluster; null in a single process. */
  readonly connectionBalance: ConnectionBalance | null;
  servingCertificate(): ServingCertificate;
  stop(): Promise<void>;
}

export interface StartApiOptions {
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: CaMetrics;
  /** The TokenReview authenticator, when `kubernetes` is in --authn. */
  readonly kubernetesAuthenticator?: () => Authenticator;
  /** A cluster worker: count connections and give up excess ones (server/connection-balance.ts). */
  readonly balanceConnections?: boolean;
  /** Longest TLS handshake, counted from admission (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** Cancels the start up to the moment the API would listen (start-cancelled.ts). */
  readonly signal?: AbortSignal;
  /**
   * Listen on a port of this process's own, not one shared through node:cluster's primary: in a
   * worker, a port 0 listener is otherwise shared by every worker (the warm-up's shadow API).
   */
  readonly ownPort?: boolean;
  /** Used instead of the authenticators --authn names; the warm-up's throwaway issuer (issue-path-warm-up.ts). */
  readonly authenticators?: readonly Authenticator[];
}

async function buildAuthenticators(config: CaConfig, svid: Authenticator, options: StartApiOptions): Promise<Authenticator[]> {
  const { logger, clock } = options;
  const out: Authenticator[] = [];
  for (const name of config.authn) {
    if (name === 'dev') {
      await ensureDevIssuer(config.stateDir);
      out.push(createDevAuthenticator({ stateDir: config.stateDir, trustDomain: config.trustDomain, clock, logger: logger.child({ component: 'authn-dev' }) }));
    } else if (name === 'jwks') {
      const j = config.jwks;
      if (!j) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', '--authn jwks needs jwks settings');
      const caFile = j.caFile ? { caFile: j.caFile } : {};
      // Read once here: a bad file stops the start, and the key source starts from what was read.
      const initialKeys = j.file ? readJwksFileNow(j.file, j.fileSetting) : undefined;
      out.push(
        createJwksAuthenticator({
          ...(initialKeys === undefined ? {} : { initialKeys }),
          issuer: j.issuer,
          trustDomain: config.trustDomain,
          audience: j.audience,
          source: j.file ? { kind: 'file', path: j.file } : j.url ? { kind: 'url', url: j.url, ...caFile } : { kind: 'discovery', ...caFile },
          clock,
          logger: logger.child({ component: 'authn-jwks' }),
        }),
      );
    } else if (name === 'kubernetes') {
      if (!options.kubernetesAuthenticator) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', '--authn kubernetes needs Kubernetes access (--kubeconfig or in-cluster)');
      out.push(options.kubernetesAuthenticator());
    } else {
      out.push(svid);
    }
  }
  return out;
}

export async function startApi(config: CaConfig, authority: CaAuthority, options: StartApiOptions): Promise<RunningApi> {
  const { logger, clock } = options;
  const svid = createSvidAuthenticator({
    trustAnchors: () => ({ trustDomain: config.trustDomain, rootsPem: authority.current().bundlePems }),
    clock,
    logger: logger.child({ component: 'authn-svid' }),
  });
  const authenticators = options.authenticators ?? (await buildAuthenticators(config, svid, options));
  const chain = new AuthenticatorChain(authenticators, { logger: logger.child({ component: 'authn' }) });

  const servingNames = ['localhost', '127.0.0.1', '::1', config.listen.host, ...config.servingNames].filter((n) => n !== '0.0.0.0' && n !== '::');
  // The serving certificate is a leaf like any other: under --max-ttl, so a root retired once its
  // leaves have expired never leaves a valid serving certificate behind.
  const servingTtlMs = Math.min(SERVING_TTL_MS, config.ttl.maxTtlMs);
  // Renewed half-way from issue to expiry (NotBefore is backdated, so it is no guide), checked
  // often enough that even a --max-ttl of seconds is renewed in time.
  let servingRenewAt = 0;
  const issueServing = (): ServingCertificate => {
    const issued = issueServingCertificate(authority.current(), { trustDomain: config.trustDomain, names: servingNames, ttlMs: servingTtlMs, clock });
    const now = clock.now();
    servingRenewAt = now + (issued.notAfter - now) / 2;
    return issued;
  };
  let serving = issueServing();
  const guardLogger = logger.child({ component: 'client-chain-guard' });
  const screen = createClientChainGuard({
    onBan: (address, reason, banMs) => {
      options.metrics.clientAddressBans.inc();
      guardLogger.warn({ address, reason, banSeconds: banMs / 1000 }, 'client address banned: its TLS client certificate chain costs far more to check than any Rampart chain');
    },
    onRefused: () => options.metrics.connectionsRefused.inc(),
    // Callers can fall back on a token, so an address whose chains keep failing is served, unasked.
    repeatedUnverified: 'stop-asking',
    onStopAsking: (address, reason, forMs) => {
      options.metrics.clientCertificateRequestsStopped.inc();
      guardLogger.warn(
        { address, reason, forSeconds: forMs / 1000 },
        'client address no longer asked for a TLS client certificate for a while: its chains keep failing verification (its callers can still use a token)',
      );
    },
  });
  const app = buildCaApp(
    {
      runtime: authority,
      authenticator: chain,
      svidAuthenticator: svid,
      adminIdentities: config.adminIdentities,
      metrics: options.metrics,
      logger: logger.child({ component: 'api' }),
      clock,
      maxInFlight: config.maxInFlight,
      bundleRefreshHintSeconds: Math.round(config.bundleRefreshIntervalMs / 1000),
      // Asked of this connection where node says which accepted one it wraps, else of its address.
      certificateNotAskedUntil: (socket) => {
        const address = socket.remoteAddress;
        if (address === undefined || admission.askedForCertificate(socket as TLSSocket) === true) return null;
        return screen.certificateNotAskedUntil(address);
      },
    },
    { ...apiTlsOptions(serving, authority.current().bundlePems), handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS },
  );
  const refreshServing = (): void => {
    serving = issueServing();
    (app.server as HttpsServer).setSecureContext(apiTlsOptions(serving, authority.current().bundlePems));
    logger.info({ event: 'serving-certificate-renewed', notAfter: new Date(serving.notAfter).toISOString() }, 'CA serving certificate re-issued');
  };
  // A new signer (activate, intermediate renewal) or bundle means a new serving cert and CA
  // list; both are rare, so re-issuing on every state change keeps this simple.
  const unsubscribe = authority.onChange(() => refreshServing());
  const servingTimer = setInterval(() => {
    if (clock.now() >= servingRenewAt) refreshServing();
  }, Math.min(30_000, servingTtlMs / 4));
  servingTimer.unref();

  const connectionBalance = options.balanceConnections === true ? balanceConnections(app) : null;
  answerPlainHttpRequests(app.server as HttpsServer);
  const admission = admitHandshakesInOrder(app.server as HttpsServer, { limit: HANDSHAKES_IN_PROGRESS, onShed: () => options.metrics.connectionsShed.inc(), screen });
  try {
    // The last moment a start can still be undone: once the API listens, it may have served.
    throwIfCancelled(options.signal);
    // A fleet reconnecting at once must queue in the kernel, not be reset: 511 is too small.
    await listenNamed('--listen', config.listen, () => app.listen({ host: config.listen.host, port: config.listen.port, backlog: 4096, ...(options.ownPort === true ? { exclusive: true } : {}) }));
  } catch (err) {
    clearInterval(servingTimer);
    unsubscribe();
    admission.close();
    await app.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '127.0.0.1' ? 'localhost' : config.listen.host === '::' ? 'localhost' : config.listen.host;
  return {
    url: `https://${formatHostPort({ host, port })}`,
    port,
    connectionBalance,
    servingCertificate: () => serving,
    async stop() {
      clearInterval(servingTimer);
      unsubscribe();
      admission.close();
      await app.close();
    },
  };
}
