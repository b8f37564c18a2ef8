/**
 * The CA listener's handshake admission, with real TLS on loopback: waiting connections are
 * held unread in arrival order, a silent client cannot hold admission up, connections that
 * waited too long are reset without a handshake, and close() drops the queue.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { signingContextFor } from '../../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../../src/core/ca/rotation.js';
import { systemClock } from '../../src/core/clock.js';
import { admitHandshakesInOrder, type HandshakeAdmissionOptions } from '../../src/server/handshake-admission.js';
import { issueServingCertificate } from '../../src/server/tls.js';
import { eventually } from '../helpers/poll.js';

const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
const serving = issueServingCertificate(signingContextFor(state), { trustDomain: 'cluster.local', names: ['localhost', '127.0.0.1'], ttlMs: 3_600_000, clock: systemClock });
const rootPem = state.roots[0]!.certPem;

async function start(options: HandshakeAdmissionOptions) {
  const server: Server = createServer({ key: serving.keyPem, cert: serving.certChainPem }, (_req, res) => res.end('ok'));
  const admission = admitHandshakesInOrder(server, options);
  const handshakes: number[] = [];
  server.on('secureConnection', () => handshakes.push(Date.now()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const sockets: Socket[] = [];
  const stop = async (): Promise<void> => {
    admission.close();
    for (const s of sockets) s.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { server, admission, port, handshakes, sockets, stop };
}

/** A TCP client that connects and never says anything: it holds whatever slot it gets. */
async function silentClient(port: number, into: Socket[]): Promise<Socket> {
  const socket = tcpConnect(port, '127.0.0.1');
  into.push(socket);
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return socket;
}

/** A silent client takes the one handshake slot of a `limit: 1` listener; resolves once it holds it. */
async function holdTheOnlySlot(t: Awaited<ReturnType<typeof start>>): Promise<Socket> {
  const holder = await silentClient(t.port, t.sockets);
  await eventually('the silent client holds the only slot', () => t.admission.inProgress() === 1);
  return holder;
}

/** A TLS client that trusts the test root; resolves with 'secure' or the error code it met. */
function tlsClient(port: number, into: Socket[]): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: rootPem });
    into.push(socket);
    socket.once('secureConnect', () => resolve('secure'));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('connections wait unread behind a held slot and are admitted when it frees', async () => {
  const t = await start({ limit: 1, slotTimeoutMs: 60_000, maxWaitMs: 60_000 });
  try {
    const holder = await holdTheOnlySlot(t);
    const results = [tlsClient(t.port, t.sockets), tlsClient(t.port, t.sockets), tlsClient(t.port, t.sockets)];
    await eventually('three handshakes wait their turn', () => t.admission.waiting() === 3);
    assert.equal(t.handshakes.length, 0, 'no handshake may run while the only slot is held');
    holder.destroy();
    assert.deepEqual(await Promise.all(results), ['secure', 'secure', 'secure']);
    assert.equal(t.admission.waiting(), 0);
    assert.equal(t.admission.shed(), 0);
  } finally {
    await t.stop();
  }
});

test('a silent client loses its slot after the slot timeout, so the next caller gets through', async () => {
  const t = await start({ limit: 1, slotTimeoutMs: 200, maxWaitMs: 60_000 });
  try {
    await holdTheOnlySlot(t);
    assert.equal(await tlsClient(t.port, t.sockets), 'secure');
  } finally {
    await t.stop();
  }
});

test('a connection that waited longer than maxWaitMs is reset without a handshake', async () => {
  let reported = 0;
  const t = await start({ limit: 1, slotTimeoutMs: 60_000, maxWaitMs: 200, onShed: () => reported++ });
  try {
    await holdTheOnlySlot(t);
    const outcome = await tlsClient(t.port, t.sockets);
    assert.notEqual(outcome, 'secure');
    assert.equal(t.admission.shed(), 1);
    assert.equal(reported, 1, 'each shed connection is reported once (the CA counts it in rampart_ca_connections_shed_total)');
    assert.equal(t.handshakes.length, 0);
  } finally {
    await t.stop();
  }
});

test('close() resets every waiting connection', async () => {
  const t = await start({ limit: 1, slotTimeoutMs: 60_000, maxWaitMs: 60_000 });
  try {
    await holdTheOnlySlot(t);
    const waiting = [tlsClient(t.port, t.sockets), tlsClient(t.port, t.sockets)];
    await eventually('two handshakes wait', () => t.admission.waiting() === 2);
    t.admission.close();
    for (const outcome of await Promise.all(waiting)) assert.notEqual(outcome, 'secure');
  } finally {
    await t.stop();
  }
});
