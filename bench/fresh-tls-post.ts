/**
 * One `POST /v1/certificates` over its own new TLS connection, for the fleet's simulated agents.
 *
 * node:tls checks what node:https checks: OpenSSL verifies the chain against the root, and
 * tls.connect itself checks the server name on getPeerCertificate(true) before 'secureConnect'
 * (it does so whatever rejectUnauthorized says, about 0.5 ms of client CPU per connection on
 * this box). A raw socket skips only https' agent and response parser; the CA sees the same
 * handshake and request.
 */
import { connect, type SecureContext } from 'node:tls';
import type { PostResult } from './post-csr.js';

export interface FreshTlsTarget {
  readonly host: string;
  readonly port: number;
  /** The name the CA's serving certificate must carry. */
  readonly servername: string;
  readonly secureContext: SecureContext;
  readonly timeoutMs: number;
}

function parseResponse(raw: Buffer): Omit<PostResult, 'ms'> {
  const text = raw.toString('latin1');
  const headerEnd = text.indexOf('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  if (headerEnd < 0 || status === 0) return { status: 0, error: 'no HTTP response' };
  const head = text.slice(0, headerEnd);
  const body = text.slice(headerEnd + 4);
  const retryAfter = Number(/\r\nretry-after: *(\d+)/i.exec(head)?.[1]);
  if (status === 200) return body.includes('"certChain"') ? { status, body } : { status: 0, error: '200 without certChain' };
  const code = /"code":"([A-Z_]+)"/.exec(body)?.[1];
  return { status, ...(Number.isFinite(retryAfter) ? { retryAfter } : {}), ...(code === undefined ? {} : { code }) };
}

export function postOverFreshTls(target: FreshTlsTarget, token: string, body: Buffer): Promise<PostResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const chunks: Buffer[] = [];
    const done = (r: Omit<PostResult, 'ms'>): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ ...r, ms: performance.now() - started });
    };
    const socket = connect({ host: target.host, port: target.port, servername: target.servername, secureContext: target.secureContext });
    socket.setTimeout(target.timeoutMs, () => done({ status: 0, error: 'timeout' }));
    socket.once('secureConnect', () => {
      // Not end(): a TLS close_notify before the answer could close the whole connection.
      socket.write(
        Buffer.concat([
          Buffer.from(
            `POST /v1/certificates HTTP/1.1\r\nHost: ${target.servername}:${target.port}\r\nContent-Type: application/json\r\n` +
              `Authorization: Bearer ${token}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
            'latin1',
          ),
          body,
        ]),
      );
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => done(parseResponse(Buffer.concat(chunks))));
    socket.once('error', (e: NodeJS.ErrnoException) => done({ status: 0, error: e.code ?? e.message }));
  });
}
