/** One `POST /v1/certificates` over node:https, returning status, Retry-After and latency. */
import { request, type Agent, type RequestOptions } from 'node:https';
import { createSecureContext, type SecureContext } from 'node:tls';

export interface PostResult {
  readonly status: number;
  /** Seconds, when the answer carried Retry-After. */
  readonly retryAfter?: number;
  readonly ms: number;
  /** Set for transport errors (status 0). */
  readonly error?: string;
  /** The answer's error code, for non-200 answers. */
  readonly code?: string;
  /** A 200's JSON, when the caller keeps it to check the certificate. */
  readonly body?: string;
}

export interface PostTarget {
  readonly url: URL;
  /** Built once from the trusted roots: parsing them per connection would cost the client ~1 ms each. */
  readonly secureContext: SecureContext;
  /** A keep-alive agent, or false for a fresh connection per request. */
  readonly agent: Agent | false;
  readonly timeoutMs: number;
}

/** `body` is the prebuilt JSON body `{"csr": "..."}`. */
export function postCsr(target: PostTarget, token: string, body: Buffer): Promise<PostResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Omit<PostResult, 'ms'>): void => {
      if (settled) return;
      settled = true;
      resolve({ ...r, ms: performance.now() - started });
    };
    // tls.connect takes a prebuilt secureContext; node:https's types just do not list it.
    const options: RequestOptions & { secureContext: SecureContext } = {
        method: 'POST',
        agent: target.agent,
        secureContext: target.secureContext,
        timeout: target.timeoutMs,
        headers: { 'content-type': 'application/json', 'content-length': String(body.length), authorization: `Bearer ${token}` },
      };
    const req = request(
      target.url,
      options,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status === 200) {
            done(text.includes('"certChain"') ? { status, body: text } : { status: 0, error: '200 without certChain' });
            return;
          }
          const ra = Number(res.headers['retry-after']);
          let code: string | undefined;
          try {
            code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
          } catch {
            code = undefined;
          }
          done({ status, ...(Number.isFinite(ra) ? { retryAfter: ra } : {}), ...(code === undefined ? {} : { code }) });
        });
        res.on('error', (e) => done({ status: 0, error: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => done({ status: 0, error: e.code ?? e.message }));
    req.end(body);
  });
}

/** A client TLS context trusting only `caPem`. */
export function trustContext(caPem: string): SecureContext {
  return createSecureContext({ ca: caPem });
}

export function csrBody(csrPem: string): Buffer {
  return Buffer.from(JSON.stringify({ csr: csrPem }));
}

/** The certificates endpoint of a CA URL, with `localhost` pinned to 127.0.0.1 (no IPv6/DNS lookups). */
export function loopbackUrl(caUrl: string): URL {
  const url = new URL('/v1/certificates', caUrl);
  if (url.hostname === 'localhost') url.hostname = '127.0.0.1';
  return url;
}
