/**
 * A request sent as plain HTTP to the CA's HTTPS port (`http://` typed for `https://`) gets a
 * coded 400 in plain HTTP that says so, as nginx answers, instead of a closed connection that
 * curl reports as "Empty reply from server".
 *
 * OpenSSL recognises a request line (GET, POST, HEAD, PUT) where a ClientHello should be and
 * fails the handshake with ERR_SSL_HTTP_REQUEST. The answer goes to the TCP socket under the TLS
 * one, which node keeps as the TLS socket's `_parent` (an internal: without it the connection is
 * closed as before, and a `ca-framing-errors` test fails).
 */
import type { Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { ErrorCode } from '../core/errors.js';
import { acceptedSocketOf } from '../tls/accepted-socket.js';

const CODE: ErrorCode = 'RAMPART_ERR_BAD_REQUEST';
const BODY = JSON.stringify({ error: { code: CODE, message: 'this port speaks HTTPS, and the request came as plain HTTP: use an https:// URL' } });
const ANSWER =
  'HTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\n' +
  `content-length: ${Buffer.byteLength(BODY)}\r\nconnection: close\r\n\r\n${BODY}`;

export function answerPlainHttpRequests(server: TlsServer): void {
  server.on('tlsClientError', (err: Error & { code?: string }, tlsSocket: Socket) => {
    if (err.code !== 'ERR_SSL_HTTP_REQUEST') return;
    const raw = acceptedSocketOf(tlsSocket);
    if (raw === null || raw.destroyed || !raw.writable) return;
    raw.on('error', () => {
      // The client left before reading the answer; nothing more to tell it.
    });
    raw.end(ANSWER);
  });
}
