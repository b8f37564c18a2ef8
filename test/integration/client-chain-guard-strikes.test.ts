/**
 * Chains that do not verify in handshakes carrying more bytes than node shows of them, again and
 * again from one address (tls/client-chain-guard.ts):
 * at the third within 10 minutes the CA stops asking that address for a client certificate for
 * 10 minutes, and the inbound bans it. Real TLS behind the CA's handshake admission, with the
 * guard's clock in the test's hands; the server records whether each client sent a certificate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import { systemClock } from '../../src/core/clock.js';
import { createClientChainGuard, STRIKE_LIMIT, type ClientChainGuardOptions } from '../../src/tls/client-chain-guard.js';
import { admitHandshakesInOrder } from '../../src/server/handshake-admission.js';
import { apiTlsOptions, issueServingCertificate } from '../../src/server/tls.js';
import { decoyedHugeExponentChain, longChain, type PresentedChain } from '../helpers/costly-chain.js';
import { eventually } from '../helpers/poll.js';

const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
const context = signingContextFor(state);
const serving = issueServingCertificate(context, { trustDomain: 'cluster.local', names: ['localhost'], ttlMs: 3_600_000, clock: systemClock });
const rootPem = state.roots[0]!.certPem;
// Three costly links hidden from node behind a decoy issuer: not costly by what node shows, never
// verified, and more bytes than the shown chain explains.
const untrusted = decoyedHugeExponentChain(3);
// Cheap to check and signed by nobody the server trusts, all of it shown: refused, never counted.
const shownInFull = longChain(1);
// A chain of this CA (its serving certificate is a client certificate too): verifies.
const trusted: PresentedChain = { keyPem: serving.keyPem, chainPem: serving.certChainPem };

interface Listener {
  readonly port: number;
  /** Per finished handshake, in order: whether the client sent a certificate. */
  readonly sentCertificate: boolean[];
  close(): Promise<void>;
}

async function listen(options: ClientChainGuardOptions): Promise<Listener> {
  const guard = createClientChainGuard(options);
  const server: Server = createServer(apiTlsOptions(serving, context.bundlePems), (_req, res) => res.end('ok'));
  const admission = admitHandshakesInOrder(server, { limit: 8, screen: guard });
  const sentCertificate: boolean[] = [];
  server.on('secureConnection', (socket: TLSSocket) => sentCertificate.push(Object.keys(socket.getPeerCertificate()).length > 0));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sentCertificate,
    async close() {
      admission.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function handshake(port: number, localAddress: string, chain: PresentedChain): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port, localAddress }), servername: 'localhost', ca: rootPem, key: chain.keyPem, cert: chain.chainPem });
    socket.once('secureConnect', () => {
      socket.end();
      socket.once('close', () => resolve('secure'));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/** One handshake; then whether the server saw a certificate on it. */
async function sentCertificate(listener: Listener, localAddress: string, chain: PresentedChain): Promise<boolean> {
  const before = listener.sentCertificate.length;
  assert.equal(await handshake(listener.port, localAddress, chain), 'secure');
  await eventually('the server saw the handshake', () => listener.sentCertificate.length === before + 1);
  return listener.sentCertificate[before] as boolean;
}

test('the CA stops asking an address for a certificate at its third unverified chain within 10 minutes, for 10 minutes; other addresses and verified chains are asked as before', async () => {
  let now = 5_000_000;
  const stopped: Array<{ address: string; reason: string; forMs: number }> = [];
  const listener = await listen({ now: () => now, repeatedUnverified: 'stop-asking', onStopAsking: (address, reason, forMs) => stopped.push({ address, reason, forMs }) });
  try {
    assert.equal(STRIKE_LIMIT, 3);
    assert.equal(await sentCertificate(listener, '127.0.0.41', untrusted), true);
    assert.equal(await sentCertificate(listener, '127.0.0.41', untrusted), true);
    assert.equal(stopped.length, 0, 'two are not enough');
    assert.equal(await sentCertificate(listener, '127.0.0.41', untrusted), true);
    await eventually('the address is no longer asked', () => stopped.length === 1);
    assert.equal(stopped[0]!.address, '127.0.0.41');
    assert.equal(stopped[0]!.forMs, 600_000);
    assert.match(stopped[0]!.reason, /3 client certificate chains that did not verify within 10 min \(the last: [A-Z_]+\)/);

    assert.equal(await sentCertificate(listener, '127.0.0.41', untrusted), false, 'not asked, the client sends none, and the handshake still succeeds');
    assert.equal(await sentCertificate(listener, '127.0.0.41', trusted), false, 'nor a chain that would verify, from that address');
    assert.equal(await sentCertificate(listener, '127.0.0.42', untrusted), true, 'another address is asked');
    now += 599_999;
    assert.equal(await sentCertificate(listener, '127.0.0.41', trusted), false, 'not asked until 10 minutes are up');
    now += 2;
    assert.equal(await sentCertificate(listener, '127.0.0.41', trusted), true, 'asked again after 10 minutes');

    // Strikes older than the window do not count.
    assert.equal(await sentCertificate(listener, '127.0.0.43', untrusted), true);
    assert.equal(await sentCertificate(listener, '127.0.0.43', untrusted), true);
    now += 600_001;
    assert.equal(await sentCertificate(listener, '127.0.0.43', untrusted), true);
    assert.equal(await sentCertificate(listener, '127.0.0.43', untrusted), true);
    assert.equal(stopped.length, 1, 'two old strikes and two new ones');
    assert.equal(await sentCertificate(listener, '127.0.0.43', untrusted), true);
    await eventually('three within the window', () => stopped.length === 2);

    for (let i = 0; i < 6; i++) assert.equal(await sentCertificate(listener, '127.0.0.44', trusted), true);
    assert.equal(stopped.length, 2, 'chains that verify are no strike');
  } finally {
    await listener.close();
  }
});

test('a listener that refuses unverified chains anyway (the inbound) bans the address at the third instead', async () => {
  const now = 7_000_000;
  const bans: Array<{ address: string; reason: string; banMs: number }> = [];
  let refused = 0;
  const listener = await listen({ now: () => now, onBan: (address, reason, banMs) => bans.push({ address, reason, banMs }), onRefused: () => refused++ });
  try {
    for (let i = 0; i < STRIKE_LIMIT; i++) assert.equal(await handshake(listener.port, '127.0.0.45', untrusted), 'secure');
    await eventually('banned', () => bans.length === 1);
    assert.equal(bans[0]!.address, '127.0.0.45');
    assert.equal(bans[0]!.banMs, 10_000);
    assert.match(bans[0]!.reason, /3 client certificate chains that did not verify/);
    assert.notEqual(await handshake(listener.port, '127.0.0.45', trusted), 'secure', 'refused on arrival');
    assert.equal(refused, 1);
    assert.equal(await handshake(listener.port, '127.0.0.46', trusted), 'secure', 'another address is served');
  } finally {
    await listener.close();
  }
});

test('an unverified chain node shows in full (an expired SVID, one of a retired root or another trust domain) is never counted: the address is still asked and never banned (outside QA MED-3)', async () => {
  const now = 9_000_000;
  const stopped: string[] = [];
  const bans: string[] = [];
  const asking = await listen({ now: () => now, repeatedUnverified: 'stop-asking', onStopAsking: (address) => stopped.push(address) });
  const banning = await listen({ now: () => now, onBan: (address) => bans.push(address) });
  try {
    for (let i = 0; i < 3 * STRIKE_LIMIT; i++) {
      assert.equal(await sentCertificate(asking, '127.0.0.47', shownInFull), true);
      assert.equal(await handshake(banning.port, '127.0.0.47', shownInFull), 'secure');
    }
    assert.equal(await sentCertificate(asking, '127.0.0.47', trusted), true);
    assert.equal(await handshake(banning.port, '127.0.0.47', trusted), 'secure');
    assert.deepEqual(stopped, []);
    assert.deepEqual(bans, []);
  } finally {
    await asking.close();
    await banning.close();
  }
});
