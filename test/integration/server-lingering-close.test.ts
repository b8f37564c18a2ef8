/**
 * The limits of the lingering close (src/server/lingering-close.ts) on bare loopback sockets,
 * TLS and plain: the server's side closes when the peer closes, when it falls silent, when it has
 * sent too much, and when it has lingered too long, whatever the peer does. Each limit is tested
 * with the other two out of reach, so only that limit can close the connection; the tests wait
 * for the close and check nothing about how long it took.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createNetServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { privateKeyPem } from '../../src/core/pki/keys.js';
import { closeLingering, type LingerLimits } from '../../src/server/lingering-close.js';
import { buildCertificate } from '../helpers/pki-build.js';

const ANSWER = 'HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';
const OUT_OF_REACH = 120_000;
const serving = buildCertificate({ subject: { commonName: 'localhost' }, extensions: [] });

interface Linger {
  /** The client's socket, connected (TLS established when `tls`). */
  readonly client: Socket;
  /** Resolves when the server's socket has closed. */
  readonly serverClosed: Promise<void>;
  /** Bytes the server's socket still held unread when it closed. */
  readonly unreadAtClose: () => number;
  readonly answer: () => string;
  close(): Promise<void>;
}

/** A server that answers every connection's first bytes with ANSWER and closes lingering within `limits`. */
async function lingerWith(limits: LingerLimits, tls: boolean): Promise<Linger> {
  let resolveClosed: () => void = () => undefined;
  const serverClosed = new Promise<void>((resolve) => (resolveClosed = resolve));
  let unread = -1;
  const onConnection = (socket: Socket): void => {
    socket.once('data', () => {
      closeLingering(socket, ANSWER, limits);
      socket.once('close', () => {
        unread = socket.readableLength;
        resolveClosed();
      });
    });
  };
  const server: Server = tls ? createTlsServer({ key: privateKeyPem(serving.privateKey), cert: serving.pem }, onConnection) : createNetServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const client = tls ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : netConnect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => client.once(tls ? 'secureConnect' : 'connect', resolve).once('error', reject));
  // A client that keeps its side open after the server's FIN, as one still uploading does.
  client.allowHalfOpen = true;
  client.on('error', () => {
    // The reset a cut-off client gets; expected.
  });
  let answer = '';
  client.setEncoding('latin1').on('data', (d: string) => (answer += d));
  client.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n');
  return {
    client,
    serverClosed,
    unreadAtClose: () => unread,
    answer: () => answer,
    async close() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

for (const tls of [true, false]) {
  const over = tls ? 'over TLS' : 'over plain TCP';

  test(`${over}: the linger ends when the peer closes its side, after it has read the answer`, async () => {
    const linger = await lingerWith({ totalMs: OUT_OF_REACH, idleMs: OUT_OF_REACH, maxBytes: 1 << 30 }, tls);
    try {
      await new Promise<void>((resolve) => linger.client.once('end', () => resolve()));
      linger.client.write('x'.repeat(100_000));
      linger.client.end();
      await linger.serverClosed;
      assert.equal(linger.answer(), ANSWER);
      assert.equal(linger.unreadAtClose(), 0, 'the bytes after the answer were read away, none left buffered');
    } finally {
      await linger.close();
    }
  });

  test(`${over}: a peer that falls silent without closing is closed`, async () => {
    const linger = await lingerWith({ totalMs: OUT_OF_REACH, idleMs: 100, maxBytes: 1 << 30 }, tls);
    try {
      await linger.serverClosed;
      assert.equal(linger.answer(), ANSWER);
    } finally {
      await linger.close();
    }
  });

  test(`${over}: a peer that keeps sending is closed when the linger's time is up`, async () => {
    const linger = await lingerWith({ totalMs: 300, idleMs: OUT_OF_REACH, maxBytes: 1 << 30 }, tls);
    const trickle = setInterval(() => {
      if (linger.client.writable) linger.client.write('x'.repeat(100));
    }, 20);
    try {
      await linger.serverClosed;
      assert.equal(linger.answer(), ANSWER);
    } finally {
      clearInterval(trickle);
      await linger.close();
    }
  });

  test(`${over}: a peer that sends more than the byte limit is closed`, async () => {
    const linger = await lingerWith({ totalMs: OUT_OF_REACH, idleMs: OUT_OF_REACH, maxBytes: 64 * 1024 }, tls);
    const chunk = Buffer.alloc(64 * 1024, 0x78);
    let sent = 0;
    // Stops at 1 GiB, far past the limit, so a linger that ignored it would end the test by timeout.
    const pump = (): void => {
      while (linger.client.writable && sent < 1 << 30) {
        sent += chunk.length;
        if (!linger.client.write(chunk)) {
          linger.client.once('drain', pump);
          return;
        }
      }
    };
    try {
      pump();
      await linger.serverClosed;
      assert.ok(sent < 1 << 30, 'cut off long before the client ran out of bytes');
    } finally {
      await linger.close();
    }
  });
}
