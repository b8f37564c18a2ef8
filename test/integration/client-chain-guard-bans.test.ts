/**
 * How long the client-chain guard bans an address (server/client-chain-guard.ts), on a real TLS
 * listener behind the CA's handshake admission, with the guard's clock in the test's hands: the
 * first ban lasts 10 s, each further offence doubles it up to the cap, and an address whose last
 * offence is an hour old starts again at 10 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import { systemClock } from '../../src/core/clock.js';
import { addressKey, createClientChainGuard } from '../../src/tls/client-chain-guard.js';
import { admitHandshakesInOrder } from '../../src/server/handshake-admission.js';
import { apiTlsOptions, issueServingCertificate } from '../../src/server/tls.js';
import { hugeExponentChain, type PresentedChain } from '../helpers/costly-chain.js';
import { eventually } from '../helpers/poll.js';

const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
const context = signingContextFor(state);
const serving = issueServingCertificate(context, { trustDomain: 'cluster.local', names: ['localhost'], ttlMs: 3_600_000, clock: systemClock });
const rootPem = state.roots[0]!.certPem;

function handshake(port: number, localAddress: string, chain?: PresentedChain): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port, localAddress }), servername: 'localhost', ca: rootPem, ...(chain ? { key: chain.keyPem, cert: chain.chainPem } : {}) });
    socket.once('secureConnect', () => {
      socket.end();
      resolve('secure');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('bans double with each offence up to the cap, and an hour without one starts them again at 10 s', async () => {
  let now = 1_000_000;
  const bans: number[] = [];
  let refused = 0;
  const guard = createClientChainGuard({ now: () => now, maxBanMs: 40_000, onBan: (_address, _reason, banMs) => bans.push(banMs), onRefused: () => refused++ });
  const server: Server = createServer(apiTlsOptions(serving, context.bundlePems), (_req, res) => res.end('ok'));
  const admission = admitHandshakesInOrder(server, { limit: 8, screen: guard });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const costly = hugeExponentChain(1);
  const offend = async (expectedBans: number): Promise<void> => {
    assert.equal(await handshake(port, '127.0.0.21', costly), 'secure', 'the first costly handshake cannot be stopped');
    await eventually(`ban ${expectedBans}`, () => bans.length === expectedBans);
  };
  try {
    await offend(1);
    assert.equal(guard.banned(), 1);
    assert.notEqual(await handshake(port, '127.0.0.21'), 'secure');
    assert.equal(await handshake(port, '127.0.0.22'), 'secure', 'another address is not banned');
    now += 9_999;
    assert.notEqual(await handshake(port, '127.0.0.21'), 'secure', 'still banned just before 10 s');
    now += 2;
    assert.equal(await handshake(port, '127.0.0.21'), 'secure', 'admitted again after 10 s');
    await offend(2);
    now += 20_001;
    await offend(3);
    now += 40_001;
    await offend(4);
    assert.deepEqual(bans, [10_000, 20_000, 40_000, 40_000], 'doubling, then the cap');
    assert.equal(refused, 2);
    now += 3_600_001;
    await offend(5);
    assert.equal(bans[4], 10_000, 'forgotten after an hour without an offence');
  } finally {
    admission.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test('an address is banned as itself, an IPv4-mapped one as IPv4: an IPv6 neighbour in the same /64 is not', () => {
  assert.equal(addressKey('10.1.2.3'), '10.1.2.3');
  assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(addressKey('2001:db8:1:2::7'), '2001:db8:1:2::7');
  assert.notEqual(addressKey('2001:db8:1:2::8'), addressKey('2001:db8:1:2::7'));
});
