/**
 * A client that opens a TCP connection to the CA's API and never finishes the TLS handshake is
 * closed once the handshake timeout fires, instead of holding a file descriptor for node's
 * default 120 s; callers that do speak TLS are served meanwhile.
 */
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';
import { after, before, test } from 'node:test';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';

const HANDSHAKE_MS = 400;

let ca: TestCa;
before(async () => {
  ca = await startTestCa({}, { apiHandshakeTimeoutMs: HANDSHAKE_MS });
});
after(() => ca.close());

/** Resolves with how long after connecting the CA closed a client that sent `bytes` and then nothing. */
function stalledClient(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const started = Date.now();
    const fail = setTimeout(() => {
      socket.destroy();
      reject(new Error('the CA kept a stalled handshake open for 15 s'));
    }, 15_000);
    socket.on('connect', () => {
      if (bytes.length > 0) socket.write(bytes);
    });
    socket.on('error', () => undefined);
    const closed = (): void => {
      clearTimeout(fail);
      resolve(Date.now() - started);
    };
    // 'end' is the CA's FIN; 'close' covers a reset.
    socket.once('end', closed);
    socket.once('close', closed);
  });
}

test('the CA API closes connections whose TLS handshake stalls, and keeps serving', async () => {
  const port = new URL(ca.apiUrl).port;
  // A TLS record header announcing a ClientHello that never arrives, beside clients that say nothing.
  const partialHello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
  const stalled = [
    ...Array.from({ length: 8 }, () => stalledClient(Number(port), Buffer.alloc(0))),
    ...Array.from({ length: 8 }, () => stalledClient(Number(port), partialHello)),
  ];
  const bundle = await httpsJson(`${ca.apiUrl}/v1/trust-bundle`, { ca: ca.rootCertPem() });
  assert.equal(bundle.status, 200);
  const closedAfter = await Promise.all(stalled);
  for (const ms of closedAfter) assert.ok(ms >= HANDSHAKE_MS - 50, `closed after ${ms} ms, before the handshake timeout`);
});
