/**
 * A cluster worker's share of long-lived connections, with real TLS on loopback: once the
 * primary's count says this worker holds more than its share, exactly its excess connections
 * are answered with `Connection: close`, and the rest stay open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import { systemClock } from '../../src/core/clock.js';
import { balanceConnections, excessConnections } from '../../src/server/connection-balance.js';
import { issueServingCertificate } from '../../src/server/tls.js';
import { httpsJson } from '../helpers/https.js';
import { eventually } from '../helpers/poll.js';

const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
const serving = issueServingCertificate(signingContextFor(state), { trustDomain: 'cluster.local', names: ['localhost', '127.0.0.1'], ttlMs: 3_600_000, clock: systemClock });

test('a worker gives up only what it holds beyond its share plus slack', () => {
  assert.equal(excessConnections(10, 12, 2), 2, 'share 6, slack 2');
  assert.equal(excessConnections(8, 12, 2), 0);
  assert.equal(excessConnections(64, 64, 2), 64 - 32 - 4, 'slack is a tenth of the share when that is more than 2');
  assert.equal(excessConnections(64, 64, 1), 0, 'a single process never closes');
  assert.equal(excessConnections(5, 0, 2), 0, 'no count from the primary yet');
});

test('excess connections are closed after their next answer, and only those', async () => {
  const app = fastify({ https: { key: serving.keyPem, cert: serving.certChainPem } }) as unknown as FastifyInstance;
  app.get('/ping', async () => 'pong');
  const balance = balanceConnections(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 10, ca: state.roots[0]!.certPem });
  const round = (lanes: number): Promise<Array<string | undefined>> =>
    Promise.all(Array.from({ length: lanes }, async () => (await httpsJson(`https://127.0.0.1:${port}/ping`, { agent })).headers.connection));
  const closes = (answers: Array<string | undefined>): number => answers.filter((c) => c === 'close').length;
  try {
    assert.equal(closes(await round(10)), 0, 'nothing is closed before the primary reports a count');
    assert.equal(balance.open(), 10);
    // The cluster holds 12 and this worker 10 of them: its share is 6, plus a slack of 2.
    balance.update(12, 2);
    assert.equal(closes(await round(10)), 2);
    await eventually('the two excess connections to close', () => balance.open() === 8, 5_000);
    assert.equal(closes(await round(8)), 0, 'the connections within the share stay open');
    balance.update(8, 1);
    assert.equal(closes(await round(10)), 0, 'one worker alone keeps every connection');
    assert.equal(balance.open(), 10);
  } finally {
    agent.destroy();
    await app.close();
  }
});
