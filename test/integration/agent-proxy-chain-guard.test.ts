/**
 * The agent's inbound bans addresses whose client chains cost far more to check than any SVID
 * chain (tls/client-chain-guard.ts), with real TLS on loopback; 127.0.0.x addresses stand for
 * other pods. The inbound requires a verified SVID as before: a chain that does not verify is
 * refused and logged as such, now after the guard has read it.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { decoyedHugeExponentChain, hugeExponentChain, type PresentedChain } from '../helpers/costly-chain.js';
import { eventually } from '../helpers/poll.js';
import { captureLogs, makePki, startEchoInbound, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/** One mTLS connection from `localAddress` presenting `chain`; resolves with the echo of 'ping', or the error met. */
function connectFrom(port: number, localAddress: string, chain: PresentedChain): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ socket: net.connect({ host: '127.0.0.1', port, localAddress }), ca: readFileSync(pki.caPath), key: chain.keyPem, cert: chain.chainPem, checkServerIdentity: () => undefined });
    let got = '';
    socket.on('secureConnect', () => socket.write('ping'));
    socket.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= 4) socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(got || err.code || err.message));
    socket.on('close', () => resolve(got || 'closed'));
  });
}

test('a costly chain bans its address at the inbound; a real peer from another address is still served; an unverified chain is still refused', async () => {
  const logs = captureLogs();
  const registry = new Registry();
  const { inbound, close } = await startEchoInbound(pki, logs.logger, { registry, tunnel: 'off' });
  const client: PresentedChain = { keyPem: readFileSync(pki.leaves.client.keyPath, 'utf8'), chainPem: readFileSync(pki.leaves.client.certPath, 'utf8') };
  const foreign: PresentedChain = { keyPem: readFileSync(pki.leaves.foreign.keyPath, 'utf8'), chainPem: readFileSync(pki.leaves.foreign.certPath, 'utf8') };
  try {
    const port = inbound.address.port;
    assert.notEqual(await connectFrom(port, '127.0.0.31', hugeExponentChain(2)), 'ping');
    const ban = await logs.waitFor((l) => l['event'] === 'client-address-banned');
    assert.equal(ban['address'], '127.0.0.31');
    assert.match(String(ban['reason']), /RSA public exponent of 2\^32 or more/);
    const count = async (result: string): Promise<number> => (await registry.getSingleMetric('rampart_agent_connections_total')?.get())?.values.find((v) => v.labels['result'] === result)?.value ?? 0;
    const linesFrom = (remote: string): number => logs.lines.filter((l) => l['remote'] === remote || l['remote'] === `::ffff:${remote}`).length;
    const tlsErrorsBefore = await count('tls-error');
    const linesBefore = linesFrom('127.0.0.31');
    // Even a real SVID is turned away from the banned address, before any handshake.
    assert.notEqual(await connectFrom(port, '127.0.0.31', client), 'ping');
    await eventually('the refusal is counted', async () => (await count('address-banned')) === 1);
    await new Promise((r) => setTimeout(r, 200));
    // Counted once, as address-banned: not also as a failed handshake, nor logged as one (outside QA).
    assert.equal(await count('tls-error'), tlsErrorsBefore);
    assert.equal(linesFrom('127.0.0.31'), linesBefore);
    assert.match(await connectFrom(port, '127.0.0.32', client), /^ping/);
    // A chain from another trust domain is refused as before (logged as a refused client chain), and bans no one.
    assert.notEqual(await connectFrom(port, '127.0.0.33', foreign), 'ping');
    await eventually('the refusal is logged', () => logs.lines.some((l) => l['result'] === 'tls-error' && /^client certificate refused: [A-Z_]+$/.test(String(l['error']))));
    assert.match(await connectFrom(port, '127.0.0.33', client), /^ping/);
    assert.equal(logs.lines.filter((l) => l['event'] === 'client-address-banned').length, 1);
  } finally {
    await close();
  }
});

test('a peer whose chains keep failing verification with more bytes than node shows is banned at the third within 10 minutes; a real peer from another address is still served', async () => {
  const logs = captureLogs();
  const { inbound, close } = await startEchoInbound(pki, logs.logger, { tunnel: 'off' });
  const client: PresentedChain = { keyPem: readFileSync(pki.leaves.client.keyPath, 'utf8'), chainPem: readFileSync(pki.leaves.client.certPath, 'utf8') };
  // Three costly links hidden from node behind a decoy issuer: not costly by what node shows.
  const hiding = decoyedHugeExponentChain(3);
  try {
    const port = inbound.address.port;
    for (let i = 0; i < 2; i++) assert.notEqual(await connectFrom(port, '127.0.0.34', hiding), 'ping');
    assert.match(await connectFrom(port, '127.0.0.34', client), /^ping/, 'two refused chains ban no one');
    assert.notEqual(await connectFrom(port, '127.0.0.34', hiding), 'ping');
    const ban = await logs.waitFor((l) => l['event'] === 'client-address-banned');
    assert.equal(ban['address'], '127.0.0.34');
    assert.match(String(ban['reason']), /^3 client certificate chains that did not verify within 10 min \(the last: [A-Z_]+\)$/);
    assert.notEqual(await connectFrom(port, '127.0.0.34', client), 'ping', 'banned: even a real SVID from there is turned away');
    assert.match(await connectFrom(port, '127.0.0.35', client), /^ping/);
  } finally {
    await close();
  }
});

test('expired or untrusted SVIDs, refused again and again, ban no one: a healthy peer at the same address is still served (outside QA MED-3)', async () => {
  const logs = captureLogs();
  const { inbound, close } = await startEchoInbound(pki, logs.logger, { tunnel: 'off' });
  const client: PresentedChain = { keyPem: readFileSync(pki.leaves.client.keyPath, 'utf8'), chainPem: readFileSync(pki.leaves.client.certPath, 'utf8') };
  // An SVID of another trust domain (a root the inbound no longer trusts looks the same), and one
  // of this trust domain that has expired: both cheap to check, both shown by node in full.
  const foreign: PresentedChain = { keyPem: readFileSync(pki.leaves.foreign.keyPath, 'utf8'), chainPem: readFileSync(pki.leaves.foreign.certPath, 'utf8') };
  const expired: PresentedChain = { keyPem: readFileSync(pki.leaves.expired.keyPath, 'utf8'), chainPem: readFileSync(pki.leaves.expired.certPath, 'utf8') };
  try {
    const port = inbound.address.port;
    for (let i = 0; i < 4; i++) {
      assert.notEqual(await connectFrom(port, '127.0.0.36', foreign), 'ping');
      assert.notEqual(await connectFrom(port, '127.0.0.36', expired), 'ping');
    }
    await eventually('the refusals are logged', () => logs.lines.filter((l) => l['result'] === 'tls-error' && /CERT_HAS_EXPIRED/.test(String(l['error']))).length === 4);
    assert.match(await connectFrom(port, '127.0.0.36', client), /^ping/, 'eight refused SVIDs ban no one');
    assert.equal(logs.lines.filter((l) => l['event'] === 'client-address-banned').length, 0);
  } finally {
    await close();
  }
});
