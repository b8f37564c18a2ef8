/**
 * One `POST /v1/certificates` over its own new TLS connection, for the fleet's simulated agents.
 *
 * node:https checks the server name through getPeerCertificate(true), which turns the whole
 * chain into JS objects: about 0.9 ms of client CPU per connection on this box, paid on the same
 * two cores as the CA under test. Here the chain is still verified by OpenSSL against the root
 * (`authorized`) and the name is checked on the X509Certificate, so each agent checks exactly
 * what node:https checks, at a fraction of the cost; the CA sees the same handshake and request.
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
  if (status === 200) return body.includes('"certChain"') ? { status } : { status: 0, error: '200 without certChain' };
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
    // The chain is verified either way; refusing here rather than in OpenSSL keeps the name
    // check below on the cheap X509Certificate path.
    const socket = connect({ host: target.host, port: target.port, servername: target.servername, secureContext: target.secureContext, rejectUnauthorized: false });
    socket.setTimeout(target.timeoutMs, () => done({ status: 0, error: 'timeout' }));
    socket.once('secureConnect', () => {
      if (!socket.authorized) return done({ status: 0, error: `untrusted CA certificate: ${String(socket.authorizationError)}` });
      if (socket.getPeerX509Certificate()?.checkHost(target.servername) === undefined) return done({ status: 0, error: `CA certificate does not name ${target.servername}` });
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
