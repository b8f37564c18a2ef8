/**
 * Warms a signing process's issue path before it serves (`--warm-up-requests N`).
 *
 * A fresh node process runs its JavaScript in the interpreter and baseline tiers until V8 has
 * seen enough calls to optimise it, and a fresh CA usually meets its heaviest load first: every
 * pod of a cluster asking at once after an outage or a CA rollout. Profiled on the
 * 10,000-agent fleet, V8's optimising compiler took 15 % of the CA's CPU for the first eight
 * seconds, and the CA spent 15-20 % more CPU per agent than it did once warm (README,
 * "Benchmarks").
 *
 * So before the API listens, the process serves N requests to itself through a shadow of its own
 * API: the same startApi, TLS settings, admission, fastify routes, JWT authenticator and signing
 * code, but a throwaway CA and token issuer made in memory for the purpose and dropped after. The
 * CA's own keys sign nothing here, nothing is stored, and the shadow has its own metrics
 * registry and a silent logger, so the real CA's counts and logs show no trace of it. The code
 * the shadow ran is what V8 optimised, and the real API runs the same functions.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { Agent, request, type RequestOptions } from 'node:https';
import { createSecureContext, type SecureContext } from 'node:tls';
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import { DEFAULT_AUDIENCE, createJwksAuthenticator } from '../authn/jwks.js';
import { createKeyAndCsr } from '../agent/csr.js';
import type { CaConfig } from '../config/ca-config.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../core/ca/rotation.js';
import type { Clock } from '../core/clock.js';
import { createCaMetrics } from '../observability/ca-metrics.js';
import { ReplicaRuntime } from './replica-runtime.js';
import { startApi, type RunningApi } from './start-api.js';

/** Issuer of the warm-up's tokens; an address no real issuer has. */
const WARM_UP_ISSUER = 'https://rampart.warm-up.invalid';
const WARM_UP_NAMESPACE = 'rampart-warm-up';
/** Distinct identities (and CSR keys) the warm-up cycles through. */
const IDENTITIES = 16;
const DEFAULT_CONCURRENCY = 8;
/** A slow or starved machine gives up warming rather than holding the start back. */
const DEFAULT_DEADLINE_MS = 15_000;

export interface WarmUpOptions {
  readonly requests: number;
  readonly clock: Clock;
  readonly concurrency?: number;
  readonly deadlineMs?: number;
}

export interface WarmUpReport {
  readonly requests: number;
  readonly issued: number;
  readonly failed: number;
  /** Failed requests by status and error code, or by transport error. */
  readonly failures: Record<string, number>;
  readonly ms: number;
  /** True when the deadline ended the warm-up before every request was made. */
  readonly cutShort: boolean;
}

interface ThrowawayIssuer {
  mint(serviceAccount: string): Promise<string>;
  readonly jwks: { keys: Array<Record<string, unknown>> };
}

async function throwawayIssuer(clock: Clock): Promise<ThrowawayIssuer> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return {
    jwks: { keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] },
    // Shaped like a projected service-account token, as the dev and jwks issuers' are.
    mint(serviceAccount: string): Promise<string> {
      const iat = Math.floor(clock.now() / 1000);
      return new SignJWT({ 'kubernetes.io': { namespace: WARM_UP_NAMESPACE, serviceaccount: { name: serviceAccount, uid: randomUUID() } } })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(WARM_UP_ISSUER)
        .setSubject(`system:serviceaccount:${WARM_UP_NAMESPACE}:${serviceAccount}`)
        .setAudience([DEFAULT_AUDIENCE])
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + 600)
        .setJti(randomUUID())
        .sign(privateKey);
    },
  };
}

/** One POST /v1/certificates; resolves null for a 200 that carries a chain, else what went wrong. */
function askForCertificate(port: number, trust: SecureContext, token: string, body: string, keptOpen: Agent | false): Promise<string | null> {
  return new Promise((resolve) => {
    // tls.connect takes a prebuilt secureContext; node:https's types just do not list it.
    const options: RequestOptions & { secureContext: SecureContext } = {
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      method: 'POST',
      path: '/v1/certificates',
      secureContext: trust,
      // Half over new connections, as a starting fleet arrives, half over one kept open, as
      // agents renewing on a long-lived connection do.
      agent: keptOpen,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    };
    const req = request(
      options,
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve(res.statusCode === 200 && text.includes('"certChain"') ? null : `${res.statusCode ?? 0} ${/"code":"([A-Z_]+)"/.exec(text)?.[1] ?? ''}`.trim()));
        res.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'response error'));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'request error'));
    req.end(body);
  });
}

/**
 * Serves `options.requests` certificate requests through a throwaway shadow of the API (see the
 * file comment). Never throws for a failed request: the report counts them. Throws only if the
 * shadow cannot start at all, which the caller logs and goes on from.
 */
export async function warmUpIssuePath(config: CaConfig, options: WarmUpOptions): Promise<WarmUpReport> {
  const { clock } = options;
  const started = clock.now();
  const deadline = started + (options.deadlineMs ?? DEFAULT_DEADLINE_MS);
  const state = bootstrapState(config.trustDomain, started, DEFAULT_LIFETIMES);
  const replica = new ReplicaRuntime(() => undefined, config.ttl, clock);
  replica.receive({ t: 'rampart-state', state });
  const issuer = await throwawayIssuer(clock);
  const logger = pino({ level: 'silent' });
  const authenticator = createJwksAuthenticator({ issuer: WARM_UP_ISSUER, trustDomain: config.trustDomain, source: { kind: 'static', keys: issuer.jwks }, clock, logger });
  const bodies = Array.from({ length: Math.min(IDENTITIES, options.requests) }, () => JSON.stringify({ csr: createKeyAndCsr().csrPem }));
  const shadowConfig: CaConfig = { ...config, listen: { host: '127.0.0.1', port: 0 }, servingNames: [] };
  let api: RunningApi;
  try {
    api = await startApi(shadowConfig, replica, { logger, clock, metrics: createCaMetrics(new Registry()), authenticators: [authenticator], ownPort: true });
  } catch (err) {
    replica.stop();
    throw err;
  }
  // One trust context for every connection: given `ca`, node would build an OpenSSL context per
  // new connection, and the garbage collector would free hundreds of them in one pause just as
  // the CA starts serving (a 60-70 ms mark-compact in an e2e worker, measured with --trace-gc-nvp).
  const trust = createSecureContext({ ca: state.roots[0]?.certPem ?? '' });
  // Never more at once than --max-in-flight lets through: the rest would only be answered 429.
  const concurrency = Math.max(1, Math.min(options.concurrency ?? DEFAULT_CONCURRENCY, config.maxInFlight));
  const keptOpen = new Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  let issued = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const worker = async (): Promise<void> => {
    while (next < options.requests && clock.now() < deadline) {
      const n = next++;
      const identity = n % bodies.length;
      // A new token each time, as a starting fleet brings: a repeated one could be answered from a cache and leave verification cold.
      const token = await issuer.mint(`warm-up-${identity}`);
      const failure = await askForCertificate(api.port, trust, token, bodies[identity] ?? '', n % 2 === 1 && keptOpen);
      if (failure === null) issued++;
      else {
        failed++;
        failures[failure] = (failures[failure] ?? 0) + 1;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, () => worker()));
  } finally {
    keptOpen.destroy();
    await api.stop();
    replica.stop();
  }
  return { requests: issued + failed, issued, failed, failures, ms: clock.now() - started, cutShort: issued + failed < options.requests };
}

/** Runs the warm-up `--warm-up-requests` asks for and logs how it went; a failure only costs the warm-up. */
export async function warmUpBeforeServing(config: CaConfig, logger: Logger, clock: Clock): Promise<void> {
  if (config.warmUpRequests === 0) return;
  try {
    const report = await warmUpIssuePath(config, { requests: config.warmUpRequests, clock });
    const level = report.failed > 0 || report.cutShort ? 'warn' : 'info';
    logger[level]({ event: 'warm-up', ...report }, 'issue path warmed up on a throwaway CA before serving');
  } catch (err) {
    logger.warn({ event: 'warm-up-failed', err: { message: (err as Error).message } }, 'issue path warm-up could not start; serving cold');
  }
}
