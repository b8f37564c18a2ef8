/**
 * The CA bans addresses whose TLS client chains cost far more to check than any Rampart chain
 * (server/client-chain-guard.ts), with real TLS on loopback: each 127.0.0.x address stands for
 * another host. A banned address's next connection is closed before any handshake; other
 * addresses, and agents presenting their own SVIDs, are served as before.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createTcpServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { decoyedHugeExponentChain, hugeExponentChain, longChain, type PresentedChain } from '../helpers/costly-chain.js';
import { httpsJson } from '../helpers/https.js';
import { eventually } from '../helpers/poll.js';

let ca: TestCa;
let port: number;

before(async () => {
  ca = await startTestCa();
  port = Number(new URL(ca.apiUrl).port);
});
after(async () => {
  await ca.close();
});

/** One TLS connection from `localAddress`: 'secure' once the handshake is done, else the error met; closes either way. */
function handshake(localAddress: string, chain?: PresentedChain): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      socket: tcpConnect({ host: '127.0.0.1', port, localAddress }),
      servername: 'localhost',
      ca: ca.rootCertPem(),
      ...(chain !== undefined ? { key: chain.keyPem, cert: chain.chainPem } : {}),
    });
    // end(), not destroy(): the client's last flight (its Certificate among it) may still be in
    // node's buffers when 'secureConnect' fires.
    socket.once('secureConnect', () => {
      socket.end();
      resolve('secure');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${ca.monitoringUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

const banLines = (address: string): Array<{ address: string; reason: string; banSeconds: number }> =>
  ca.logLines.filter((l) => l.includes('client address banned')).map((l) => JSON.parse(l) as { address: string; reason: string; banSeconds: number }).filter((l) => l.address === address);

/** After a costly chain from `address`: wait for the ban, then check a fresh connection from there is closed unanswered. */
async function assertBanned(address: string, reason: RegExp): Promise<void> {
  await eventually(`${address} is banned`, () => banLines(address).length === 1);
  const [line] = banLines(address);
  assert.match(line!.reason, reason);
  assert.equal(line!.banSeconds, 10);
  const refusedBefore = await metric('rampart_ca_connections_refused_total');
  const again = await handshake(address);
  assert.notEqual(again, 'secure', 'a banned address gets no handshake');
  assert.equal(await metric('rampart_ca_connections_refused_total'), refusedBefore + 1);
}

test('a client chain with RSA exponents as long as their moduli bans its address; other addresses are still issued certificates', async () => {
  await handshake('127.0.0.11', hugeExponentChain(2));
  await assertBanned('127.0.0.11', /RSA public exponent of 2\^32 or more/);
  const { csrPem } = createKeyAndCsr();
  const issued = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await ca.token('shop', 'cart'), body: { csr: csrPem }, localAddress: '127.0.0.12' });
  assert.equal(issued.status, 200, issued.text);
  assert.ok((await metric('rampart_ca_client_address_bans_total')) >= 1);
  // What the log says of a ban names the address and the reason, never certificate or key bytes.
  const line = ca.logLines.find((l) => l.includes('127.0.0.11') && l.includes('banned'))!;
  assert.doesNotMatch(line, /BEGIN|MII/);
});

test('a chain longer than eight certificates bans its address even with ordinary keys', async () => {
  await handshake('127.0.0.13', longChain(9));
  await assertBanned('127.0.0.13', /a chain of more than 8 certificates/);
});

/**
 * Presents `chain` through a relay from `localAddress` that passes the client's records up to its
 * first encrypted one (TLS 1.3's Certificate message) and then closes, gracefully or with a reset:
 * the CA checks the chain, then meets the end of the connection instead of a Finished.
 */
async function presentAndLeave(localAddress: string, chain: PresentedChain, leave: 'end' | 'reset', upTo: 'certificate' | 'client-hello' = 'certificate'): Promise<void> {
  const relay = createTcpServer((client: Socket) => {
    const upstream = tcpConnect({ host: '127.0.0.1', port, localAddress });
    upstream.on('error', () => undefined);
    client.on('error', () => undefined);
    upstream.pipe(client);
    let pending = Buffer.alloc(0);
    let left = false;
    client.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      while (!left && pending.length >= 5) {
        const length = pending.readUInt16BE(3);
        if (pending.length < 5 + length) break;
        const record = pending.subarray(0, 5 + length);
        pending = pending.subarray(5 + length);
        upstream.write(record);
        if (record[0] === 23 || upTo === 'client-hello') {
          left = true;
          // After a pause: a reset that overtakes unread data makes the kernel drop the data, and
          // the chain with it, which costs the CA nothing.
          setTimeout(() => {
            if (leave === 'end') {
              upstream.end();
            } else {
              upstream.resetAndDestroy();
              client.destroy();
            }
          }, 50);
        }
      }
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  try {
    await new Promise<void>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: (relay.address() as AddressInfo).port, servername: 'localhost', ca: ca.rootCertPem(), key: chain.keyPem, cert: chain.chainPem, minVersion: 'TLSv1.3' });
      socket.on('error', () => resolve());
      socket.on('close', () => resolve());
    });
  } finally {
    relay.close();
  }
}

test('a costly chain whose handshake then fails (the client stops after its Certificate) bans its address too', async () => {
  await presentAndLeave('127.0.0.14', hugeExponentChain(2), 'end');
  await assertBanned('127.0.0.14', /RSA public exponent/);
});

test('a client that resets the connection after its Certificate message is banned too', async () => {
  await presentAndLeave('127.0.0.16', hugeExponentChain(3), 'reset');
  await assertBanned('127.0.0.16', /RSA public exponent/);
});

test('handshakes cut short after the ClientHello, as scanners and impatient clients leave them, ban no one', async () => {
  for (let i = 0; i < 3; i++) await presentAndLeave('127.0.0.17', hugeExponentChain(3), 'reset', 'client-hello');
  await presentAndLeave('127.0.0.17', hugeExponentChain(3), 'end', 'client-hello');
  assert.equal(await handshake('127.0.0.17'), 'secure');
  assert.deepEqual(banLines('127.0.0.17'), []);
});

test('a costly chain hidden from node behind an expired decoy issuer bans its address by the bytes it took', async () => {
  await handshake('127.0.0.18', decoyedHugeExponentChain(8));
  await assertBanned('127.0.0.18', /an unverified chain in a handshake of \d+ bytes/);
});

test('a few costly links behind a decoy, within 8 KiB, cost three handshakes; then the address is not asked for a certificate, and its token requests are still issued', async () => {
  const chain = decoyedHugeExponentChain(3);
  for (let i = 0; i < 3; i++) assert.equal(await handshake('127.0.0.19', chain), 'secure');
  const stopLines = (): string[] => ca.logLines.filter((l) => l.includes('no longer asked for a TLS client certificate') && l.includes('"127.0.0.19"'));
  await eventually('127.0.0.19 is no longer asked', () => stopLines().length === 1);
  assert.match(stopLines()[0]!, /3 client certificate chains that did not verify within 10 min/);
  assert.doesNotMatch(stopLines()[0]!, /BEGIN|MII/);
  assert.deepEqual(banLines('127.0.0.19'), []);
  assert.ok((await metric('rampart_ca_client_certificate_requests_stopped_total')) >= 1);
  const { csrPem } = createKeyAndCsr();
  const issued = await httpsJson(`${ca.apiUrl}/v1/certificates`, {
    ca: ca.rootCertPem(),
    token: await ca.token('shop', 'cart'),
    body: { csr: csrPem },
    cert: chain.chainPem,
    key: chain.keyPem,
    localAddress: '127.0.0.19',
  });
  assert.equal(issued.status, 200, issued.text);

  // Without a token the caller is told why its certificate was not taken, and so is the log.
  const refusedHere = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), body: { csr: csrPem }, cert: chain.chainPem, key: chain.keyPem, localAddress: '127.0.0.19' });
  assert.equal(refusedHere.status, 401, refusedHere.text);
  assert.match(String((refusedHere.body.error as { message: string }).message), /not asked for a TLS client certificate until \d{4}-\d\d-\d\dT[\d:.]+Z because .*use a token/);
  const failureLines = (address: string): string[] => ca.logLines.filter((l) => l.includes('"authentication failed"') && l.includes(`"remoteAddress":"${address}"`));
  await eventually('the 401 from 127.0.0.19 is logged', () => failureLines('127.0.0.19').length === 1);
  assert.match(failureLines('127.0.0.19')[0]!, /"hasClientCertificate":false.*"clientCertificateNotAskedUntil":"\d{4}-/);
  // Another address, asked as usual, gets the plain answer.
  const refusedElsewhere = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), body: { csr: csrPem }, localAddress: '127.0.0.20' });
  assert.equal(refusedElsewhere.status, 401, refusedElsewhere.text);
  assert.doesNotMatch(String((refusedElsewhere.body.error as { message: string }).message), /not asked/);
  await eventually('the 401 from 127.0.0.20 is logged', () => failureLines('127.0.0.20').length === 1);
  assert.doesNotMatch(failureLines('127.0.0.20')[0]!, /clientCertificateNotAskedUntil/);
});

test("an agent presenting its own SVID, connection after connection, bans no one", async () => {
  const { keyPem, csrPem } = createKeyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await ca.token('shop', 'web'), body: { csr: csrPem }, localAddress: '127.0.0.15' });
  assert.equal(res.status, 200, res.text);
  const svid = (res.body.certChain as string[]).join('');
  for (let i = 0; i < 5; i++) {
    const bundle = await httpsJson(`${ca.apiUrl}/v1/trust-bundle`, { ca: ca.rootCertPem(), cert: svid, key: keyPem, localAddress: '127.0.0.15' });
    assert.equal(bundle.status, 200, bundle.text);
  }
  assert.deepEqual(banLines('127.0.0.15'), []);
});

test('a keep-alive connection opened, and asked, before its address was paused is answered as asked; a new one from there as not asked', async () => {
  const address = '127.0.0.21';
  const open = tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port, localAddress: address }), servername: 'localhost', ca: ca.rootCertPem() });
  await new Promise<void>((resolve, reject) => {
    open.once('secureConnect', () => resolve());
    open.once('error', reject);
  });
  try {
    const chain = decoyedHugeExponentChain(3);
    for (let i = 0; i < 3; i++) assert.equal(await handshake(address, chain), 'secure');
    await eventually(`${address} is no longer asked`, () => ca.logLines.some((l) => l.includes('no longer asked for a TLS client certificate') && l.includes(`"${address}"`)));
    const body = JSON.stringify({ csr: createKeyAndCsr().csrPem });
    let answer = '';
    open.setEncoding('utf8');
    open.on('data', (chunk: string) => (answer += chunk));
    open.write(`POST /v1/certificates HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    await eventually('the answer on the open connection', () => answer.includes('\r\n\r\n') && answer.includes('}}'));
    assert.match(answer, /^HTTP\/1\.1 401 /);
    assert.doesNotMatch(answer, /not asked/);
    const fresh = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), body: { csr: createKeyAndCsr().csrPem }, localAddress: address });
    assert.equal(fresh.status, 401, fresh.text);
    assert.match(String((fresh.body.error as { message: string }).message), /not asked for a TLS client certificate until/);
  } finally {
    open.destroy();
  }
});
