/**
 * The CA client's deadline covers the whole exchange and fires at the time it names. node's
 * `timeout` request option, on a connection whose TLS handshake never completes, fired after
 * twice its value (outside QA: 30 s per attempt against a silent CA, the error saying 15 s).
 * Mocked timers tell the two apart without timing anything: the deadline is a timer of our own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { CaClient } from '../../src/client/ca-client.js';
import { buildCertificate } from '../helpers/pki-build.js';

/** Lets pending I/O callbacks and next-ticks run; setImmediate is not mocked here. */
async function settleIo(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

test('a CA that accepts and never answers fails the request at the deadline given, with that deadline in the error', async (t) => {
  // Accepts TCP, never speaks TLS.
  const silent = net.createServer((s) => s.on('error', () => {}));
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const port = (silent.address() as net.AddressInfo).port;
  const anyRoot = buildCertificate({ subject: { commonName: 'unused root' }, extensions: [] }).pem;
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const client = new CaClient({ url: `https://127.0.0.1:${port}`, caBundle: () => anyRoot, timeoutMs: 15_000 });
  // Held in an object: assignments in callbacks are invisible to TypeScript's narrowing.
  const seen: { outcome: Error | 'pending' } = { outcome: 'pending' };
  const current = (): Error | 'pending' => seen.outcome;
  client.trustBundleRaw('pem').then(
    () => (seen.outcome = new Error('answered')),
    (err: Error) => (seen.outcome = err),
  );
  try {
    await settleIo();
    t.mock.timers.tick(14_999);
    await settleIo();
    assert.equal(current(), 'pending', 'not before the deadline');
    t.mock.timers.tick(1);
    await settleIo();
    const outcome = current();
    assert.ok(outcome instanceof Error, 'failed at the deadline');
    assert.match(outcome.message, /cannot reach the CA at https:\/\/127\.0\.0\.1:\d+: no answer within 15000 ms/);
  } finally {
    t.mock.timers.reset();
    client.close();
    silent.close();
  }
});
