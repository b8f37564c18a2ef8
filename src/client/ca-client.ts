/**
 * HTTPS client of the CA API, shared by the agent and the CLI. Trusts only the given bundle,
 * keeps connections alive, and turns error bodies into coded errors.
 */
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { ERROR_CATALOGUE, RampartError, UnavailableError, type ErrorCode } from '../core/errors.js';

/** An error answer from the CA, with its HTTP status and code. */
export class CaResponseError extends RampartError {
  readonly status: number;
  constructor(status: number, code: ErrorCode, message: string, retryAfterSeconds?: number) {
    super(code, message, retryAfterSeconds === undefined ? undefined : { retryAfterSeconds });
    this.status = status;
  }
}

export interface CertificateResponse {
  readonly spiffeId: string;
  readonly certChain: string[];
  readonly trustBundle: string[];
  readonly bundleSequence: number;
  readonly expiresAt: string;
  readonly notBefore?: string;
  readonly ttlSeconds?: number;
  readonly serial?: string;
}

export interface BundleJson {
  readonly trustDomain: string;
  readonly sequence: number;
  readonly roots: Array<{ pem: string; phase: string; notAfter: string; fingerprint: string }>;
}

export interface CaClientOptions {
  readonly url: string;
  /** Trusted roots (PEM) for the CA's serving certificate; a function so updates apply. */
  readonly caBundle: () => string;
  /** Client certificate to present (agent SVID), read on every request. */
  readonly clientCertificate?: () => { keyPem: string; certChainPem: string } | null;
  readonly agentId?: string;
  readonly timeoutMs?: number;
  /**
   * Roots to add, for one more try, when the CA's certificate does not chain to `caBundle`: the
   * agent's bootstrap file, which the CA keeps current. An agent that slept through a root
   * activation holds a bundle without the root the CA now serves under, and the bundle it would
   * learn it from is behind that very connection.
   */
  readonly recoveryCaBundle?: () => string;
  /** Called when a request succeeded only with the recovery roots. */
  readonly onTrustRecovered?: () => void;
}

// Verification failures that more roots can cure (not a wrong name or an expired certificate).
const UNKNOWN_ISSUER_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** `held` plus the certificates of `extra` it lacks; null when it lacks none. */
function widenedTrust(held: string, extra: string): string | null {
  const have = new Set(held.match(PEM_CERTIFICATE) ?? []);
  const missing = (extra.match(PEM_CERTIFICATE) ?? []).filter((pem) => !have.has(pem));
  return missing.length === 0 ? null : [held.trim(), ...missing].join('\n') + '\n';
}

interface SendExtra {
  readonly body?: string;
  readonly token?: string | undefined;
  readonly bundleSequence?: number | undefined;
  readonly timeoutMs?: number;
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export class CaClient {
  private readonly base: URL;
  private agent: Agent | null = null;
  private agentKey = '';

  constructor(private readonly options: CaClientOptions) {
    this.base = new URL(options.url);
    if (this.base.protocol !== 'https:') throw new RampartError('RAMPART_ERR_CONFIG_INVALID', `CA URL ${options.url} must be https://`);
  }

  /** POST /v1/certificates. */
  async requestCertificate(input: { csrPem: string; ttlSeconds?: number; token?: string; bundleSequence?: number }): Promise<CertificateResponse> {
    const body = JSON.stringify({ csr: input.csrPem, ...(input.ttlSeconds !== undefined ? { ttlSeconds: input.ttlSeconds } : {}) });
    const res = await this.send('POST', '/v1/certificates', { body, token: input.token, bundleSequence: input.bundleSequence });
    return JSON.parse(res.body) as CertificateResponse;
  }

  /** GET /v1/trust-bundle as JSON, optionally long-polling past `after`. */
  async trustBundle(input: { after?: number; waitSeconds?: number; bundleSequence?: number } = {}): Promise<BundleJson> {
    const q = new URLSearchParams({ format: 'json' });
    if (input.after !== undefined) q.set('after', String(input.after));
    if (input.waitSeconds !== undefined) q.set('waitSeconds', String(input.waitSeconds));
    const timeoutMs = (input.waitSeconds ?? 0) * 1000 + (this.options.timeoutMs ?? 15_000);
    const res = await this.send('GET', `/v1/trust-bundle?${q.toString()}`, { bundleSequence: input.bundleSequence, timeoutMs });
    return JSON.parse(res.body) as BundleJson;
  }

  /** GET /v1/trust-bundle in a raw format (pem or jwks). */
  async trustBundleRaw(format: 'pem' | 'jwks' | 'json'): Promise<string> {
    return (await this.send('GET', `/v1/trust-bundle?format=${format}`, {})).body;
  }

  async adminStatus(token?: string): Promise<unknown> {
    return JSON.parse((await this.send('GET', '/v1/admin/status', { token })).body);
  }

  async adminStep(step: 'prepare' | 'activate' | 'retire', force: boolean, token?: string): Promise<unknown> {
    return JSON.parse((await this.send('POST', `/v1/admin/roots/${step}`, { token, body: JSON.stringify({ force }) })).body);
  }

  close(): void {
    this.agent?.destroy();
    this.agent = null;
  }

  private httpsAgent(ca: string): Agent {
    const client = this.options.clientCertificate?.() ?? null;
    const key = `${ca}\n${client?.certChainPem ?? ''}`;
    if (this.agent === null || key !== this.agentKey) {
      // New trust or a new client certificate: new connections; old sockets finish what they do.
      const previous = this.agent;
      this.agent = new Agent({ keepAlive: true, maxSockets: 4, ca, ...(client ? { key: client.keyPem, cert: client.certChainPem } : {}) });
      this.agentKey = key;
      setTimeout(() => previous?.destroy(), 30_000).unref();
    }
    return this.agent;
  }

  private async send(method: string, path: string, extra: SendExtra): Promise<RawResponse> {
    const held = this.options.caBundle();
    try {
      return await this.sendTrusting(held, method, path, extra);
    } catch (err) {
      const widened = this.recoveryTrust(err, held);
      if (widened === null) throw err;
      const res = await this.sendTrusting(widened, method, path, extra);
      this.options.onTrustRecovered?.();
      return res;
    }
  }

  /** The held roots widened by the recovery roots, when `err` is a CA certificate they might verify. */
  private recoveryTrust(err: unknown, held: string): string | null {
    if (this.options.recoveryCaBundle === undefined || !(err instanceof UnavailableError)) return null;
    const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === undefined || !UNKNOWN_ISSUER_CODES.has(code)) return null;
    return widenedTrust(held, this.options.recoveryCaBundle());
  }

  private sendTrusting(ca: string, method: string, path: string, extra: SendExtra): Promise<RawResponse> {
    const url = new URL(path, this.base);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (extra.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(extra.body));
    }
    if (extra.token) headers['authorization'] = `Bearer ${extra.token}`;
    if (extra.bundleSequence !== undefined) headers['rampart-bundle-sequence'] = String(extra.bundleSequence);
    if (this.options.agentId) headers['rampart-agent-id'] = this.options.agentId;
    const options: RequestOptions = { method, headers, agent: this.httpsAgent(ca) };
    const timeoutMs = extra.timeoutMs ?? this.options.timeoutMs ?? 15_000;
    return new Promise((resolve, reject) => {
      // Our own deadline for the whole exchange: node's `timeout` option on a request whose TLS
      // handshake never completes fired after twice its value (a silent CA took 30 s per attempt
      // while the error said 15; outside QA).
      const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      const settle = <T>(fn: (value: T) => void) => (value: T): void => {
        clearTimeout(deadline);
        fn(value);
      };
      const ok = settle(resolve);
      const fail = settle(reject);
      const req = httpsRequest(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => fail(unreachable(this.base, err, true)));
        res.on('end', () => {
          const raw: RawResponse = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') };
          if (raw.status >= 200 && raw.status < 300) ok(raw);
          else fail(errorFromResponse(raw));
        });
      });
      // Whether the whole request went out before the exchange failed: the CA may have acted on it.
      let sent = false;
      req.on('finish', () => (sent = true));
      req.on('error', (err) => fail(unreachable(this.base, err, sent)));
      req.end(extra.body);
    });
  }
}

// node's codes for a server certificate that does not chain to the trusted roots, or is out of date.
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/**
 * The reason a request never got an answer, with the advice that fits it: a server that was
 * reached but not trusted, or that does not speak TLS, is not a CA that is down ("check that
 * the CA is running" sent users looking in the wrong place; outside QA).
 */
function unreachable(base: URL, err: Error, requestSent: boolean): CaUnreachableError {
  const code = (err as NodeJS.ErrnoException).code;
  let message = `cannot reach the CA at ${base.origin}: ${code ?? err.message}`;
  let advised = true;
  if (code !== undefined && UNTRUSTED_CERTIFICATE.has(code)) {
    message = `the server at ${base.origin} presented a certificate that --ca-bundle does not trust (${code}); check --ca-bundle: it must hold the CA's current roots (its root-cert.pem, or the published trust bundle)`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    message = `the CA at ${base.origin} presented a certificate that is not for ${base.hostname} (${code}); use a --ca-url host the CA's serving certificate names (its --serving-name)`;
  } else if (code === 'EPROTO' && /wrong version number|packet length too long|unknown protocol/i.test(err.message)) {
    message = `the server at ${base.origin} does not speak TLS (${code}); check --ca-url: it must be the CA's API port, not its monitoring port or another service`;
  } else {
    advised = false;
  }
  return new CaUnreachableError(message, err, requestSent, advised);
}

/**
 * No answer from the CA; `requestSent` when the whole request had gone out first, `advised` when
 * the message already says what to check (so callers add no generic advice of their own).
 */
export class CaUnreachableError extends UnavailableError {
  constructor(
    message: string,
    cause: Error,
    readonly requestSent: boolean,
    readonly advised = false,
  ) {
    super('RAMPART_ERR_CA_UNREACHABLE', message, { cause });
  }
}

function errorFromResponse(raw: RawResponse): CaResponseError {
  let code: ErrorCode = raw.status === 429 ? 'RAMPART_ERR_RATE_LIMITED' : raw.status === 401 ? 'RAMPART_ERR_UNAUTHENTICATED' : 'RAMPART_ERR_INTERNAL';
  let message = `CA answered HTTP ${raw.status}`;
  try {
    const parsed = JSON.parse(raw.body) as { error?: { code?: string; message?: string } };
    if (parsed.error?.code && parsed.error.code in ERROR_CATALOGUE) code = parsed.error.code as ErrorCode;
    if (parsed.error?.message) message = parsed.error.message;
  } catch {
    // Not our error format (a proxy in between?): keep the status-derived code.
  }
  const retryHeader = raw.headers['retry-after'];
  const retryAfter = typeof retryHeader === 'string' && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
  return new CaResponseError(raw.status, code, message, retryAfter);
}
