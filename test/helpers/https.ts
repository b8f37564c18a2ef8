/** A small JSON-over-HTTPS request helper for tests (node:https, trusting only the given roots). */
import { request as httpsRequest, type Agent } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- test bodies are checked field by field
export interface HttpsResult<T = any> {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Raw body text. */
  readonly text: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  readonly body: T;
}

export interface HttpsOptions {
  readonly method?: string;
  /** Trusted roots (PEM) for the server certificate. */
  readonly ca?: string | readonly string[];
  /** Client certificate and key (PEM) to present. */
  readonly cert?: string;
  readonly key?: string;
  readonly token?: string;
  /** An object is sent as JSON; a string or Buffer is sent as is. */
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Host name checked against the server certificate (default: the URL's host). */
  readonly servername?: string;
  /** Skip server certificate verification (bootstrap only, before the roots are known). */
  readonly insecure?: boolean;
  /** A keep-alive agent to reuse connections, as an agent does; its own TLS settings apply. */
  readonly agent?: Agent;
  /** Local address to connect from (another loopback address stands for another pod). */
  readonly localAddress?: string;
}

/** Sends one request and reads the whole answer. Uses no keep-alive agent unless given one. */
export function httpsJson<T = any>(url: string, options: HttpsOptions = {}): Promise<HttpsResult<T>> {
  const target = new URL(url);
  const headers: Record<string, string> = { accept: 'application/json', ...(options.headers ?? {}) };
  let payload: Buffer | undefined;
  if (options.body !== undefined) {
    payload = typeof options.body === 'string' ? Buffer.from(options.body) : Buffer.isBuffer(options.body) ? options.body : Buffer.from(JSON.stringify(options.body));
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  const isHttps = target.protocol === 'https:';
  const send = isHttps ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? (options.body !== undefined ? 'POST' : 'GET'),
        headers,
        agent: options.agent ?? false,
        ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}),
        ...(isHttps && options.agent === undefined
          ? {
              ...(options.insecure ? { rejectUnauthorized: false } : {}),
              ca: options.ca === undefined ? undefined : typeof options.ca === 'string' ? options.ca : [...options.ca],
              ...(options.cert !== undefined ? { cert: options.cert } : {}),
              ...(options.key !== undefined ? { key: options.key } : {}),
              ...(options.servername !== undefined ? { servername: options.servername } : {}),
            }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown;
          try {
            body = text.length > 0 ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: body as T });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
