/**
 * Keeps the workload's X.509-SVID fresh (DESIGN section 7): fetches the first certificate,
 * renews at 50 % ± 10 % of its lifetime with full-jitter backoff on failure, keeps the previous
 * certificate until it expires, follows the trust bundle through a {@link BundleFollower}, writes
 * the output directory and publishes every generation to the proxy through {@link CredentialSource}.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { CaUnreachableError, type CaClient, type CertificateResponse } from '../client/ca-client.js';
import { formatDuration, type Clock } from '../core/clock.js';
import { LEAF_BACKDATE_MS } from '../core/ca/policy.js';
import { isRampartError, RampartError } from '../core/errors.js';
import { parseSpiffeId } from '../core/identity.js';
import type { AgentMetrics } from './agent-metrics.js';
import { BundleFollower } from './bundle-follower.js';
import { chainsToBundle } from './chain-check.js';
import { createKeyAndCsr } from './csr.js';
import { FirstCertificateTimeout, ManagerStopped, type Failure } from './first-certificate.js';
import type { Credentials, CredentialSource } from './credentials.js';
import { OutputKeeper } from './output-keeper.js';
import { ensureNewline } from './pem-text.js';
import { decide, lastStartupAttemptAt, renewalTime, retryDelay, startupRetryAt, usableFrom } from './renewal-policy.js';
import type { TokenSource } from './token-source.js';

/** Options of {@link CertificateManager}. */
export interface CertificateManagerOptions {
  /** Client for POST /v1/certificates; it must not present a client certificate (token only). */
  readonly certificateClient: CaClient;
  /** Client for the bundle long-poll; presents this manager's SVID (see {@link clientCertificate}). */
  readonly bundleClient: CaClient;
  readonly tokenSource: TokenSource;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  /** Requested lifetime; the CA clamps it and says what it granted. */
  readonly ttlSeconds?: number | undefined;
  /** Output directory, or null to keep credentials in memory only. */
  readonly outDir: string | null;
  /** Uniform [0, 1) draws for jitter; injectable so tests can pin them. */
  readonly random?: () => number;
  /** Backoff bounds (default 1 s doubling to 60 s). */
  readonly retry?: { readonly baseMs?: number; readonly maxMs?: number };
  /** How long each bundle long-poll waits at the CA (default 20 s). */
  readonly bundleWaitSeconds?: number;
  /** The wall clock is consulted at least this often (default 5 s) so a resumed host renews. */
  readonly checkIntervalMs?: number;
}

interface Held {
  readonly credentials: Credentials;
  readonly serial: string;
  readonly renewAt: number;
}

const DEFAULT_CHECK_MS = 5_000;

/** The agent's certificate lifecycle; a {@link CredentialSource} for the proxy. */
export class CertificateManager implements CredentialSource {
  private held: Held | null = null;
  private failures = 0;
  private retryAt: number | null = null;
  private lastFailure: Failure | null = null;
  /** When the attempt behind {@link lastFailure} started. */
  private lastFailedAttemptAt: number | null = null;
  /** While waiting for the first certificate: the last attempt before the start-up deadline. */
  private lastStartupAttempt: number | null = null;
  private expiredLogged = false;
  /** The lifetime (s) last granted other than --ttl asked, so the warning is said once per change. */
  private clampLogged: number | null = null;
  private stopped = false;
  private started = false;
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  private readonly listeners = new Set<(c: Credentials) => void>();
  /** Pending {@link waitForFirstCertificate} calls: settled by the first certificate or by stop(). */
  private readonly firstWaiters = new Set<{ readonly arrived: () => void; readonly stopped: () => void }>();
  private readonly random: () => number;
  private readonly log: Logger;
  /** Writes the output directory, or null when credentials stay in memory. */
  private readonly output: OutputKeeper | null;
  private readonly bundle: BundleFollower;

  constructor(private readonly options: CertificateManagerOptions) {
    this.random = options.random ?? Math.random;
    this.log = options.logger.child({ component: 'certificates' });
    this.output =
      options.outDir === null
        ? null
        : new OutputKeeper({ outDir: options.outDir, logger: this.log, now: () => options.clock.now(), random: this.random, ...(options.retry ? { retry: options.retry } : {}) });
    this.bundle = new BundleFollower({
      client: options.bundleClient,
      logger: this.log,
      metrics: options.metrics,
      random: this.random,
      ...(options.retry ? { retry: options.retry } : {}),
      ...(options.bundleWaitSeconds === undefined ? {} : { waitSeconds: options.bundleWaitSeconds }),
      onNewer: (pem) => this.bundleChanged(pem),
    });
  }

  /** Starts fetching; returns at once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.schedule(0);
  }

  /** The newest credentials (possibly expired), or null before the first certificate. */
  current(): Credentials | null {
    return this.held?.credentials ?? null;
  }

  onChange(listener: (c: Credentials) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** True while an unexpired certificate is held. */
  ready(): boolean {
    const held = this.held;
    return held !== null && held.credentials.notAfter > this.options.clock.now();
  }

  /**
   * Why the agent is not ready, for /readyz; null when ready: a valid certificate is held and
   * the output directory (if any) holds it too, since that is what the application reads.
   */
  notReadyReason(): string | null {
    if (this.ready()) return this.output?.staleReason() ?? null;
    const why = this.lastFailure ? `; last attempt: ${this.lastFailure.message}` : '';
    return this.held === null ? `no certificate yet${why}` : `certificate expired at ${new Date(this.held.credentials.notAfter).toISOString()}${why}`;
  }

  /** The trust-bundle sequence held (0 before the first bundle). */
  get bundleSequence(): number {
    return this.bundle.sequence;
  }

  /** Serial (hex, upper case) of the held certificate. */
  get serial(): string | null {
    return this.held?.serial ?? null;
  }

  /** The SVID to present as a client certificate, while it is valid. */
  clientCertificate(): { keyPem: string; certChainPem: string } | null {
    return this.ready() && this.held ? { keyPem: this.held.credentials.keyPem, certChainPem: this.held.credentials.certChainPem } : null;
  }

  /**
   * Resolves once a certificate is held; rejects after `timeoutMs` with the last failure, so a
   * start-up that cannot reach the CA or is refused says why. Until then no retry waits past the
   * deadline: the last attempt is made just before it (see {@link startupRetryAt}).
   */
  async waitForFirstCertificate(timeoutMs: number): Promise<Credentials> {
    if (this.held) return this.held.credentials;
    if (this.stopped) throw new ManagerStopped();
    this.lastStartupAttempt = lastStartupAttemptAt(this.options.clock.now() + timeoutMs, timeoutMs);
    this.keepRetryWithinStartup();
    await new Promise<void>((resolve, reject) => {
      const settle = (outcome: () => void): void => {
        clearTimeout(timer);
        this.firstWaiters.delete(waiter);
        outcome();
      };
      const waiter = { arrived: () => settle(resolve), stopped: () => settle(() => reject(new ManagerStopped())) };
      const timer = setTimeout(() => settle(() => reject(new FirstCertificateTimeout(timeoutMs, this.lastFailure))), timeoutMs);
      this.firstWaiters.add(waiter);
    });
    return (this.held as Held | null)?.credentials as Credentials;
  }

  /**
   * Stops renewing and long-polling; waits for an attempt in flight to settle. A pending
   * {@link waitForFirstCertificate} rejects with {@link ManagerStopped} at once: no certificate
   * can arrive any more, and its timer must not keep the process alive until the deadline.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const waiter of [...this.firstWaiters]) waiter.stopped();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.bundle.stop();
    this.options.bundleClient.close();
    this.options.certificateClient.close();
    await this.renewing?.catch(() => undefined);
    await this.bundle.whenStopped();
    await this.output?.stop();
  }

  // ---- renewal loop -------------------------------------------------------------------------

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    // Never sleep past the check interval: timers do not advance while a host is suspended,
    // the wall clock does, and it is the wall clock that says when to renew.
    const wait = Math.max(0, Math.min(delayMs, this.options.checkIntervalMs ?? DEFAULT_CHECK_MS));
    this.timer = setTimeout(() => this.tick(), wait);
    this.timer.unref();
  }

  private tick(): void {
    this.timer = null;
    if (this.stopped || this.renewing) return;
    const now = this.options.clock.now();
    this.noteExpiry(now);
    const decision = decide({ renewAt: this.held?.renewAt ?? null, retryAt: this.retryAt }, now);
    if (decision.action === 'wait') {
      this.schedule(decision.untilMs - now);
      return;
    }
    this.renewing = this.renew().finally(() => {
      this.renewing = null;
      const next = decide({ renewAt: this.held?.renewAt ?? null, retryAt: this.retryAt }, this.options.clock.now());
      this.schedule(next.action === 'renew' ? 0 : next.untilMs - this.options.clock.now());
    });
  }

  /**
   * The held certificate's root left the trust bundle (a forced retire): peers holding the new
   * bundle would refuse it, so renew now rather than at the scheduled time.
   */
  private renewNow(serial: string): void {
    const held = this.held;
    if (held === null || held.serial !== serial || this.stopped) return;
    this.log.warn({ event: 'certificate-root-retired', serial, bundleSequence: this.bundle.sequence }, 'the current certificate no longer chains to the trust bundle; renewing now');
    this.held = { ...held, renewAt: Math.min(held.renewAt, this.options.clock.now()) };
    this.retryAt = null;
    if (this.renewing === null) this.schedule(0);
  }

  private noteExpiry(now: number): void {
    const held = this.held;
    if (held === null || held.credentials.notAfter > now) return;
    if (!this.expiredLogged) {
      this.expiredLogged = true;
      this.log.error({ event: 'certificate-expired', serial: held.serial, notAfter: new Date(held.credentials.notAfter).toISOString() }, 'certificate expired and no renewal succeeded; not ready, proxies refuse new connections until the CA answers');
    }
  }

  /** Cuts a retry wait that would outlast the start-up deadline to the last attempt before it. */
  private keepRetryWithinStartup(): void {
    if (this.held !== null || this.lastStartupAttempt === null || this.retryAt === null || this.lastFailedAttemptAt === null) return;
    const retryAt = startupRetryAt({ attemptedAt: this.lastFailedAttemptAt, backoffUntil: this.retryAt, lastAttemptAt: this.lastStartupAttempt });
    if (retryAt === this.retryAt) return;
    this.retryAt = retryAt;
    // Mid-attempt, the attempt's own completion schedules the next one from retryAt.
    if (this.renewing === null && this.started) this.schedule(retryAt - this.options.clock.now());
  }

  private async renew(): Promise<void> {
    const attemptAt = this.options.clock.now();
    try {
      const token = await this.options.tokenSource.read();
      const { keyPem, csrPem } = createKeyAndCsr();
      const response = await this.options.certificateClient.requestCertificate({
        csrPem,
        token,
        ...(this.options.ttlSeconds === undefined ? {} : { ttlSeconds: this.options.ttlSeconds }),
        ...(this.bundle.sequence > 0 ? { bundleSequence: this.bundle.sequence } : {}),
      });
      if (this.stopped) return;
      await this.adopt(response, keyPem, this.options.clock.now());
      this.options.metrics.renewal('ok');
    } catch (err) {
      if (this.stopped) return;
      this.fail(err, attemptAt);
    }
  }

  private fail(err: unknown, attemptAt: number): void {
    const code = isRampartError(err) ? err.code : 'RAMPART_ERR_INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    this.failures++;
    const validFor = this.held === null ? undefined : this.held.credentials.notAfter - this.options.clock.now();
    const delay = retryDelay({
      failures: this.failures,
      random: this.random(),
      retryAfterSeconds: isRampartError(err) ? err.retryAfterSeconds : undefined,
      ...(validFor === undefined ? {} : { expiresInMs: validFor }),
      ...(this.options.retry?.baseMs === undefined ? {} : { baseMs: this.options.retry.baseMs }),
      ...(this.options.retry?.maxMs === undefined ? {} : { maxMs: this.options.retry.maxMs }),
    });
    const now = this.options.clock.now();
    this.retryAt = now + delay;
    this.lastFailure = { code, message, advised: err instanceof CaUnreachableError && err.advised };
    this.lastFailedAttemptAt = attemptAt;
    this.keepRetryWithinStartup();
    const retryInMs = Math.max(0, this.retryAt - now);
    this.options.metrics.renewal(code);
    const held = this.held;
    this.log.warn(
      {
        event: 'renewal-failed',
        code,
        error: message,
        failures: this.failures,
        retryInMs,
        attemptedAt: new Date(attemptAt).toISOString(),
        ...(held ? { keeping: held.serial, validUntil: new Date(held.credentials.notAfter).toISOString(), expired: held.credentials.notAfter <= now } : { holding: 'nothing' }),
      },
      held ? 'certificate renewal failed; keeping the current certificate and retrying' : 'cannot obtain a certificate yet; retrying',
    );
  }

  /**
   * The CA clamps --ttl to its [--min-ttl, --max-ttl]; the agent would otherwise renew on a
   * schedule its operator did not choose without a word (outside QA: --ttl 2d gave 24h).
   * NotBefore is backdated by the CA's skew allowance, so a minute either way is no clamp.
   */
  private noteClampedTtl(notBefore: number, notAfter: number): void {
    const asked = this.options.ttlSeconds;
    if (asked === undefined) return;
    const granted = notAfter - notBefore - LEAF_BACKDATE_MS;
    if (Math.abs(granted - asked * 1000) <= 60_000) {
      this.clampLogged = null;
      return;
    }
    const grantedSeconds = Math.round(granted / 1000);
    if (this.clampLogged === grantedSeconds) return;
    this.clampLogged = grantedSeconds;
    this.log.warn(
      { event: 'ttl-clamped', ttlRequested: formatDuration(asked * 1000), ttlGranted: formatDuration(grantedSeconds * 1000) },
      `the CA granted ${formatDuration(grantedSeconds * 1000)} instead of the ${formatDuration(asked * 1000)} --ttl asked (its --min-ttl/--max-ttl, or the end of its intermediate); renewals follow what was granted`,
    );
  }

  private async adopt(response: CertificateResponse, keyPem: string, receivedAt: number): Promise<void> {
    const [leafPem] = response.certChain;
    if (leafPem === undefined) throw new RampartError('RAMPART_ERR_INTERNAL', 'the CA answered without a certificate chain');
    const leaf = new X509Certificate(leafPem);
    // Refuse answers that would break the proxy later: wrong key, no identity, already expired.
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new RampartError('RAMPART_ERR_INTERNAL', 'the CA returned a certificate for a different key');
    const spiffeId = parseSpiffeId(response.spiffeId);
    const notBefore = Date.parse(leaf.validFrom);
    const notAfter = Date.parse(leaf.validTo);
    if (!(notAfter > receivedAt)) throw new RampartError('RAMPART_ERR_INTERNAL', `the CA returned a certificate that already expired (${leaf.validTo})`);
    if (response.trustBundle.length > 0) this.bundle.offer(response.trustBundle.join(''), response.bundleSequence);
    const previous = this.held;
    const credentials: Credentials = {
      spiffeId: response.spiffeId,
      keyPem,
      certChainPem: response.certChain.map(ensureNewline).join(''),
      bundlePem: this.bundle.pem ?? '',
      trustDomain: spiffeId.trustDomain,
      notAfter,
    };
    const renewAt = renewalTime({ notBefore: usableFrom(notBefore, receivedAt), notAfter }, this.random());
    this.held = { credentials, serial: leaf.serialNumber.toUpperCase(), renewAt };
    this.failures = 0;
    this.retryAt = null;
    this.lastFailure = null;
    this.lastFailedAttemptAt = null;
    this.lastStartupAttempt = null;
    this.expiredLogged = false;
    this.options.metrics.certificateExpiry(notAfter);
    if (previous && previous.credentials.spiffeId !== credentials.spiffeId) {
      this.log.warn({ event: 'identity-changed', from: previous.credentials.spiffeId, to: credentials.spiffeId }, 'the token now names another identity; serving the new one');
    }
    this.noteClampedTtl(notBefore, notAfter);
    this.log.info(
      { event: previous ? 'certificate-renewed' : 'certificate-obtained', spiffeId: credentials.spiffeId, serial: this.held.serial, notAfter: new Date(notAfter).toISOString(), renewAt: new Date(renewAt).toISOString(), bundleSequence: this.bundle.sequence },
      previous ? 'certificate renewed' : 'first certificate obtained',
    );
    await this.publish();
    for (const waiter of [...this.firstWaiters]) waiter.arrived();
    this.bundle.start();
  }

  // ---- trust bundle -------------------------------------------------------------------------

  /** The held bundle PEM (the CA client trusts it once known). */
  trustBundlePem(): string | null {
    return this.bundle.pem;
  }

  /** A newer bundle from the long-poll: republish, and renew at once if the held leaf's root left it. */
  private async bundleChanged(pem: string): Promise<void> {
    const held = this.held;
    if (held === null) return;
    this.held = { ...held, credentials: { ...held.credentials, bundlePem: pem } };
    // publish() writes a whole generation from memory, key and chain included: copying them from
    // the current generation would carry forward whatever damaged them on disk.
    await this.publish();
    if (!chainsToBundle(held.credentials.certChainPem, pem)) this.renewNow(held.serial);
  }

  // ---- publishing ---------------------------------------------------------------------------

  /** Notifies the proxy, then writes the output directory (a failed write is retried, not fatal). */
  private async publish(): Promise<void> {
    const held = this.held;
    if (held === null) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(held.credentials);
      } catch (err) {
        this.log.error({ error: err instanceof Error ? err.message : String(err) }, 'a credentials subscriber failed');
      }
    }
    await this.output?.write({ certChainPem: held.credentials.certChainPem, keyPem: held.credentials.keyPem, rootCertPem: held.credentials.bundlePem });
  }
}
