/**
 * Fetches a small JSON document (a JWKS or an OIDC discovery document) over HTTP(S) with
 * node:http/https, so an operator-supplied CA bundle can be trusted without touching the
 * process-wide trust store and without depending on the global fetch's TLS knobs.
 */
import http from 'node:http';
import https from 'node:https';
import { UnavailableError } from '../core/errors.js';

/** Options for {@link fetchJson}. */
export interface FetchJsonOptions {
  /** Extra PEM roots trusted for HTTPS (replaces the default store, like `curl --cacert`). */
  readonly caPem?: string;
  /** Give up after this long; a JWKS host that hangs must not hang authentication. */
  readonly timeoutMs?: number;
  /** Refuse bodies larger than this; a JWKS is a few KiB. */
  readonly maxBytes?: number;
}

const DEFAULT_TIMEOUT_MS = 5_000;
/** The largest JWKS document read, from a URL or a file. */
export const JWKS_MAX_BYTES = 256 * 1024;

function unreachable(url: string, why: string, cause?: unknown): UnavailableError {
  return new UnavailableError(
    'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE',
    `JWKS source ${url} could not be read: ${why}; check the URL, network and CA bundle`,
    { cause, retryAfterSeconds: 5 },
  );
}

/**
 * GETs `url` and parses the body as JSON. Any network, TLS, status or parse failure becomes an
 * UnavailableError (RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE) so callers answer 503, not 401.
 */
export function fetchJson(url: string, options: FetchJsonOptions = {}): Promise<unknown> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    return Promise.reject(unreachable(url, 'not a valid URL', cause));
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    return Promise.reject(unreachable(url, `unsupported scheme ${parsed.protocol}`));
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? JWKS_MAX_BYTES;
  return new Promise<unknown>((resolve, reject) => {
    const onResponse = (res: http.IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        res.resume();
        reject(unreachable(url, `HTTP status ${status}`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) {
          req.destroy();
          reject(unreachable(url, `response larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => reject(unreachable(url, err.message, err)));
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown);
        } catch (cause) {
          reject(unreachable(url, 'response is not JSON', cause));
        }
      });
    };
    const common = { method: 'GET', headers: { accept: 'application/json' }, timeout: timeoutMs };
    const req =
      parsed.protocol === 'https:'
        ? https.request(parsed, { ...common, ...(options.caPem === undefined ? {} : { ca: options.caPem }), agent: false }, onResponse)
        : http.request(parsed, { ...common, agent: false }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(unreachable(url, err.message, err)));
    req.end();
  });
}
