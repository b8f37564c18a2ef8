import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound, startOutbound } from '../../src/agent/proxy/index.js';
import { CLIENT_ID, SERVER_ID, INTRUDER_ID, captureLogs, connectAndWaitClose, exchange, makePki, startEchoBackend, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

for (const tunnel of ['auto', 'off'] as const) {
  test(`echo and half-close through outbound -> inbound -> backend (tunnel ${tunnel})`, async () => {
    const logs = captureLogs();
    const backend = await startEchoBackend();
    // One registry shared by both sides, as in the agent: the second start must reuse the metrics.
    const registry = new Registry();
    const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: ['spiffe://cluster.local/ns/a/*'], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, tunnel, registry });
    const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, tunnel, registry });
    try {
      // The backend answers "done:<n>" only after it saw our FIN, so this proves the client's
      // half-close reached it while the response direction stayed open.
      assert.equal((await exchange(outbound.address.port, 'hello')).toString(), 'hellodone:5');

      // Several connections at once (several streams on one pooled session in tunnel mode).
      const payloads = Array.from({ length: 8 }, (_, i) => `conn-${i}-`.repeat(i + 1));
      const replies = await Promise.all(payloads.map((p) => exchange(outbound.address.port, p)));
      replies.forEach((r, i) => assert.equal(r.toString(), `${payloads[i]}done:${payloads[i]!.length}`));

      // A payload far larger than every window and buffer exercises backpressure both ways.
      const big = randomBytes(4 << 20);
      const reply = await exchange(outbound.address.port, big);
      assert.equal(reply.length, big.length + `done:${big.length}`.length);
      assert.ok(reply.subarray(0, big.length).equals(big));

      assert.equal(outbound.tunnelSessions, tunnel === 'auto' ? 1 : 0);
      const line = await logs.waitFor((l) => l['direction'] === 'inbound' && l['msg'] === 'connection closed' && l['bytesIn'] === 5);
      assert.equal(line['peer'], CLIENT_ID);
      assert.equal(line['mode'], tunnel === 'auto' ? 'tunnel' : 'mtls');
      assert.equal(line['result'], 'ok');
      assert.equal(line['bytesOut'], 'hellodone:5'.length);
      await logs.waitFor((l) => l['direction'] === 'outbound' && l['msg'] === 'connection closed' && l['bytesIn'] === big.length);
      const counted = await registry.getSingleMetricAsString('rampart_agent_connections_total');
      assert.match(counted, /rampart_agent_connections_total\{direction="outbound",result="ok"\} 10$/m);
      await logs.waitFor((l) => l['direction'] === 'inbound' && l['msg'] === 'connection closed' && l['bytesIn'] === big.length);
      assert.match(await registry.getSingleMetricAsString('rampart_agent_connections_total'), /direction="inbound",result="ok"\} 10$/m);
    } finally {
      await outbound.close({ drainMs: 0 });
      await inbound.close({ drainMs: 0 });
      await backend.close();
    }
  });

  test(`outbound refuses an upstream whose SPIFFE ID differs (tunnel ${tunnel})`, async () => {
    const logs = captureLogs();
    const backend = await startEchoBackend();
    // The upstream's chain is valid, but it is the intruder, not the server we expect.
    const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('intruder')), logger: logs.logger, tunnel });
    const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, tunnel });
    try {
      const res = await connectAndWaitClose(outbound.address.port, 'secret');
      assert.equal(res.data, '');
      const line = await logs.waitFor((l) => l['direction'] === 'outbound' && l['msg'] === 'connection failed');
      assert.equal(line['result'], 'upstream-id-mismatch');
      assert.match(String(line['error']), new RegExp(INTRUDER_ID));
      assert.equal(backend.server.listening, true);
      assert.equal(logs.lines.some((l) => l['direction'] === 'inbound' && l['result'] === 'ok'), false);
    } finally {
      await outbound.close({ drainMs: 0 });
      await inbound.close({ drainMs: 0 });
      await backend.close();
    }
  });
}

test('inbound rejects bad options with a coded error', async () => {
  const logs = captureLogs();
  const creds = new StaticCredentialSource(pki.creds('server'));
  const base = { listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: 1 }, credentials: creds, logger: logs.logger };
  await assert.rejects(startInbound({ ...base, allow: [] }), { code: 'RAMPART_ERR_CONFIG_INVALID' });
  await assert.rejects(startInbound({ ...base, allow: ['spiffe://Bad/x'] }), { code: 'RAMPART_ERR_CONFIG_INVALID' });
  await assert.rejects(startInbound({ ...base, allow: [CLIENT_ID], backend: { host: '127.0.0.1', port: 70000 } }), { code: 'RAMPART_ERR_CONFIG_INVALID' });
  await assert.rejects(startOutbound({ listen: base.listen, upstream: { host: '127.0.0.1', port: 1 }, expectedId: 'not-an-id', credentials: creds, logger: logs.logger }), { code: 'RAMPART_ERR_CONFIG_INVALID' });
});

test('outbound tunnel reconnects after the upstream session is lost', async () => {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  const inOpts = { backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger };
  const first = await startInbound({ ...inOpts, listen: { host: '127.0.0.1', port: 0 } });
  const port = first.address.port;
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger });
  let second: Awaited<ReturnType<typeof startInbound>> | undefined;
  try {
    assert.equal((await exchange(outbound.address.port, 'one')).toString(), 'onedone:3');
    assert.equal(outbound.tunnelSessions, 1);
    await first.close({ drainMs: 0 });
    await logs.waitFor((l) => l['direction'] === 'outbound' && l['mode'] === 'tunnel-session');
    assert.equal(outbound.tunnelSessions, 0);
    second = await startInbound({ ...inOpts, listen: { host: '127.0.0.1', port } });
    assert.equal((await exchange(outbound.address.port, 'two')).toString(), 'twodone:3');
    assert.equal(outbound.tunnelSessions, 1);
  } finally {
    await outbound.close({ drainMs: 0 });
    await first.close({ drainMs: 0 });
    await second?.close({ drainMs: 0 });
    await backend.close();
  }
});

/**
 * A backend that answers nobody until `count` connections are open at once, then ends each with
 * "go", so every stream of a burst is concurrent: a full session would leave the rest waiting
 * for ever. `reset` readies it for another burst.
 */
async function startGatedBackend(count: number): Promise<{ port: number; reset(): void; close(): Promise<void> }> {
  const held = new Set<net.Socket>();
  const all = new Set<net.Socket>();
  const server = net.createServer((s) => {
    held.add(s);
    all.add(s);
    s.on('error', () => {});
    if (held.size === count) for (const h of held) h.end('go');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    reset: () => held.clear(),
    close: async () => {
      for (const s of all) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Opens `count` connections to `port` at once; resolves with what each received before its end. */
function burst(port: number, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, () => new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      let data = '';
      s.on('data', (d: Buffer) => (data += d.toString()));
      s.on('end', () => resolve(data));
      s.on('error', reject);
    })),
  );
}

test('a burst of connections spreads over new tunnel sessions instead of queueing on a full one', async () => {
  const logs = captureLogs();
  const BURST = 7;
  const backend = await startGatedBackend(BURST);
  const backendPort = backend.port;
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backendPort }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger });
  // Two streams per session: seven connections need four sessions.
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, maxStreamsPerSession: 2 });
  try {
    const replies = await burst(outbound.address.port, BURST);
    assert.deepEqual(replies, Array(BURST).fill('go'));
    assert.equal(outbound.tunnelSessions, Math.ceil(BURST / 2));
  } finally {
    await outbound.close({ drainMs: 0 });
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

test('after a burst the tunnel pool shrinks back to one session once the others stay idle, and grows again for the next burst', async () => {
  const logs = captureLogs();
  const BURST = 7;
  const backend = await startGatedBackend(BURST);
  const backendPort = backend.port;
  const registry = new Registry();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backendPort }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, registry });
  const openSessions = async (direction: string): Promise<number> => Number(new RegExp(`direction="${direction}"\\} (\\d+)$`, 'm').exec(await registry.getSingleMetricAsString('rampart_agent_tunnel_sessions_open'))?.[1]);
  // Two streams per session: seven connections need four sessions.
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, maxStreamsPerSession: 2, timeouts: { tunnelIdleMs: 300 }, registry });
  try {
    const replies = await burst(outbound.address.port, BURST);
    assert.deepEqual(replies, Array(BURST).fill('go'));
    assert.equal(outbound.tunnelSessions, Math.ceil(BURST / 2));
    assert.equal(await openSessions('outbound'), Math.ceil(BURST / 2));
    // Before: every session the burst opened stayed for good, each PINGed, on both agents.
    const closedBefore = logs.lines.filter((l) => l['direction'] === 'outbound' && l['mode'] === 'tunnel-session').length;
    await logs.waitFor(() => logs.lines.filter((l) => l['direction'] === 'outbound' && l['mode'] === 'tunnel-session').length - closedBefore >= Math.ceil(BURST / 2) - 1);
    assert.equal(outbound.tunnelSessions, 1);
    // The gauge shows it (outside QA could only count sockets with ss).
    assert.equal(await openSessions('outbound'), 1);
    // Nothing else closes: the last session is kept for the next connection.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(outbound.tunnelSessions, 1);
    backend.reset();
    const again = await burst(outbound.address.port, BURST);
    assert.deepEqual(again, Array(BURST).fill('go'));
  } finally {
    await outbound.close({ drainMs: 0 });
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

test('a tunnel-auto outbound before a tunnel-off inbound: its h2 probe carries the first connection, so the inbound sees no refused handshake, and no log line repeats a key', async () => {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, tunnel: 'off' });
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger });
  try {
    assert.equal((await exchange(outbound.address.port, 'one')).toString(), 'onedone:3');
    assert.equal((await exchange(outbound.address.port, 'two')).toString(), 'twodone:3');
    const inboundClosed = (): Array<Record<string, unknown>> => logs.lines.filter((l) => l['direction'] === 'inbound' && (l['msg'] === 'connection closed' || l['msg'] === 'connection failed'));
    await logs.waitFor(() => inboundClosed().length >= 2);
    // Before: the probe was dropped once it saw no h2, and the inbound logged a warning
    // "the client closed the connection during the TLS handshake" (tls-error) every 5 minutes.
    assert.deepEqual(inboundClosed().map((l) => l['result']), ['ok', 'ok']);
    assert.ok(logs.lines.some((l) => l['msg'] === 'upstream did not select ALPN rampart-tunnel; using one mTLS connection per application connection'));
  } finally {
    await outbound.close({ drainMs: 0 });
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
  // A key written twice (the outbound's bound "upstream" again in the pool's own lines) is
  // rejected by some log pipelines; JSON.parse would silently keep the last one, Python can tell.
  const check = 'import json,sys\nfor line in sys.stdin:\n    json.loads(line, object_pairs_hook=lambda pairs: len(pairs) == len(dict(pairs)) or sys.exit("repeated key: " + line))\n';
  const { status, stderr } = spawnSync('python3', ['-c', check], { input: logs.raw.join('\n') + '\n', encoding: 'utf8' });
  assert.equal(status, 0, stderr);
});
