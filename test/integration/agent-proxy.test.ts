import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { eventually, startTestAgent, type TestAgent } from './agent-support.js';

const CLIENT = 'spiffe://cluster.local/ns/a/sa/client';
const SERVER = 'spiffe://cluster.local/ns/b/sa/server';

let ca: TestCa;
let web: http.Server;
let server: TestAgent;
let client: TestAgent;

/** Plain HTTP backend: POST echoes the body; GET /stream sends a numbered line every 50 ms. */
function startWeb(): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const timer = setInterval(() => res.write(`tick ${n++}\n`), 50);
      res.on('close', () => clearInterval(timer));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(`echo:${Buffer.concat(chunks).toString()}`));
  });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

/** One HTTP request on a fresh connection through `port`. */
function post(port: number, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const norm = (serial: unknown): string => String(serial).toUpperCase().replace(/^0+/, '');

before(async () => {
  ca = await startTestCa({ 'min-ttl': '2s', 'default-ttl': '3s' });
  web = await startWeb();
  server = await startTestAgent(ca, 'b', 'server', { ttl: '3s', inbound: [`127.0.0.1:0=127.0.0.1:${(web.address() as AddressInfo).port}`], allow: [CLIENT] });
  client = await startTestAgent(ca, 'a', 'client', { ttl: '3s', outbound: [`127.0.0.1:0=127.0.0.1:${server.agent.inbound[0]?.address.port}#${SERVER}`] });
});

after(async () => {
  await client?.close();
  await server?.close();
  web?.closeAllConnections();
  await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
  await ca?.close();
});

test('outbound agent -> inbound agent: HTTP gets through, and the server side sees the client identity', async () => {
  const port = client.agent.outbound[0]?.address.port as number;
  assert.equal(await post(port, 'hello'), 'echo:hello');
  const line = await server.logs.waitFor((l) => l['direction'] === 'inbound' && l['result'] === 'ok' && l['peer'] === CLIENT);
  assert.ok(line['peerSerial']);
});

test('a third identity that is not allowed is refused by the inbound', async () => {
  const intruder = await startTestAgent(ca, 'c', 'intruder', { ttl: '1h', outbound: [`127.0.0.1:0=127.0.0.1:${server.agent.inbound[0]?.address.port}#${SERVER}`] });
  try {
    const port = intruder.agent.outbound[0]?.address.port as number;
    const outcome = await post(port, 'let me in').then(
      (body) => `answered ${body}`,
      (err: NodeJS.ErrnoException) => `refused ${err.code ?? err.message}`,
    );
    assert.match(outcome, /^refused/);
    const denied = await server.logs.waitFor((l) => l['peer'] === 'spiffe://cluster.local/ns/c/sa/intruder');
    assert.equal(denied['result'], 'denied');
  } finally {
    await intruder.close();
  }
});

test('a long-lived connection streams across three rotations while every new connection presents the newest certificate', async () => {
  const port = client.agent.outbound[0]?.address.port as number;
  let received = '';
  let ended: string | null = null;
  const stream = http.get({ host: '127.0.0.1', port, path: '/stream', agent: false }, (res) => {
    res.on('data', (d: Buffer) => (received += d.toString()));
    res.on('end', () => (ended ??= 'end'));
    res.on('error', (e) => (ended ??= `error ${e.message}`));
  });
  stream.on('error', (e) => (ended ??= `error ${e.message}`));
  try {
    await eventually('the stream to start', () => received.includes('tick 1'));
    // Lines are written when the inbound sees a connection end, which can trail the client's view;
    // counting them pairs each probe with its own line.
    const okLines = (): Array<Record<string, unknown>> => server.logs.lines.filter((l) => l['msg'] === 'connection closed' && l['direction'] === 'inbound' && l['result'] === 'ok' && l['peer'] === CLIENT);
    const base = okLines().length;
    let probes = 0;
    const seenServerSerials = new Set<string>();
    const clientSerials = new Set<string>();
    while (clientSerials.size < 4 || seenServerSerials.size < 4) {
      const before = client.agent.manager.serial;
      assert.equal(await post(port, 'probe'), 'echo:probe');
      probes++;
      const line = await eventually('the probe to be logged by the inbound', () => okLines()[base + probes - 1]);
      const afterSerial = client.agent.manager.serial;
      // Only judge probes with no renewal in between: then "newest" is unambiguous.
      if (before === afterSerial && before !== null) {
        assert.equal(norm(line['peerSerial']), norm(before), 'a new connection presents the newest certificate');
        clientSerials.add(before);
      }
      seenServerSerials.add(String(server.agent.manager.serial));
      assert.equal(ended, null, `the long-lived connection dropped: ${ended}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const before = received.split('\n').length;
    await eventually('the stream to keep flowing', () => received.split('\n').length > before + 3);
    assert.equal(ended, null, 'the long-lived connection survived every rotation');
    const ticks = received.trim().split('\n');
    ticks.forEach((t, i) => assert.equal(t, `tick ${i}`, 'no gap or repeat in the stream'));
  } finally {
    stream.destroy();
  }
});
