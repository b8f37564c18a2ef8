/**
 * The tunnel's own HTTP/2 (src/agent/proxy/h2) against HTTP/2 stacks nobody here wrote: node's
 * http2 module (nghttp2) as client and server, and Python's h2 (python3-h2) as a client that
 * Huffman-codes its headers and indexes them in the dynamic table. Then a raw socket breaks the
 * protocol, and the session answers with GOAWAY and the right error code instead of crashing.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLIENT_PREFACE, FRAME, frame, H2_ERROR } from '../../src/agent/proxy/h2/constants.js';
import { H2Session } from '../../src/agent/proxy/h2/session.js';
import type { H2Stream } from '../../src/agent/proxy/h2/stream.js';
import { headerValue } from '../../src/agent/proxy/h2/hpack.js';
import { TUNNEL_SESSION_OPTIONS } from '../../src/agent/proxy/inbound-tunnel.js';

const execFileAsync = promisify(execFile);

/** A server whose every connection is one of our sessions echoing each CONNECT stream. */
async function echoServer(): Promise<{ port: number; sessions: H2Session[]; closeErrors: Map<H2Session, string | undefined>; close: () => Promise<void> }> {
  const sessions: H2Session[] = [];
  const closeErrors = new Map<H2Session, string | undefined>();
  const server = net.createServer((socket) => {
    const session = new H2Session(socket, { role: 'server', ...TUNNEL_SESSION_OPTIONS });
    sessions.push(session);
    session.once('close', (error?: Error) => closeErrors.set(session, error?.message));
    session.on('stream', (stream: H2Stream, fields) => {
      stream.on('error', () => {});
      if (headerValue(fields, ':method') !== 'CONNECT') {
        stream.respond(405, [], true);
        return;
      }
      stream.respond(200, [['x-seen-authority', headerValue(fields, ':authority') ?? '']]);
      stream.pipe(stream);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    sessions,
    closeErrors,
    close: () => new Promise<void>((r) => {
      for (const s of sessions) s.destroy();
      server.close(() => r());
    }),
  };
}

const payload = (size: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7) & 0xff));

test('h2: our client through flow control to node http2 (nghttp2): 5 MiB echoed, a refusal read, PING answered, GOAWAY', async () => {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    if (headers[':authority'] === 'refuse:1') {
      stream.respond({ ':status': 403, 'rampart-refusal': 'not on the allow list' }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200 });
    stream.pipe(stream);
  });
  const goaway = new Promise<number>((resolve) => server.on('session', (s) => s.on('goaway', (code) => resolve(code))));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const session = new H2Session(net.connect((server.address() as net.AddressInfo).port, '127.0.0.1'), { role: 'client', ...TUNNEL_SESSION_OPTIONS });
  try {
    const stream = session.request([[':method', 'CONNECT'], [':authority', 'backend:1']]);
    const status = new Promise<number>((resolve) => stream.once('response', resolve));
    const sent = payload(5 << 20);
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.end(sent);
    await new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    assert.equal(await status, 200);
    assert.ok(Buffer.concat(chunks).equals(sent), 'the echo differs from what was sent');

    const refused = session.request([[':method', 'CONNECT'], [':authority', 'refuse:1']]);
    const [refusedStatus, fields] = await new Promise<[number, Array<readonly [string, string]>]>((resolve) => refused.once('response', (s: number, f: Array<readonly [string, string]>) => resolve([s, f])));
    assert.equal(refusedStatus, 403);
    assert.equal(headerValue(fields, 'rampart-refusal'), 'not on the allow list');

    await new Promise<void>((resolve, reject) => assert.ok(session.ping((err) => (err === undefined ? resolve() : reject(err)))));
    refused.destroy();
    session.close();
    assert.equal(await goaway, H2_ERROR.NO_ERROR);
    await new Promise((r) => session.once('close', r));
  } finally {
    session.destroy();
    await new Promise((r) => server.close(r));
  }
});

test('h2: node http2 (nghttp2) client to our server: Huffman and indexed headers decoded, 5 MiB echoed both ways, PING answered', async () => {
  const server = await echoServer();
  const client = http2.connect(`http://127.0.0.1:${server.port}`);
  try {
    const results = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const req = client.request({ ':method': 'CONNECT', ':authority': `backend-${i}.example:443` });
        const sent = payload((1 << 20) + i * 99_991);
        const chunks: Buffer[] = [];
        req.on('data', (d: Buffer) => chunks.push(d));
        const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve));
        req.end(sent);
        await new Promise((r) => req.on('end', r));
        return { headers, same: Buffer.concat(chunks).equals(sent), i };
      }),
    );
    for (const { headers, same, i } of results) {
      assert.equal(headers[':status'], 200);
      assert.equal(headers['x-seen-authority'], `backend-${i}.example:443`);
      assert.ok(same, `stream ${i}: the echo differs`);
    }
    const get = client.request({ ':method': 'GET', ':path': '/' });
    const getHeaders = await new Promise<http2.IncomingHttpHeaders>((resolve) => get.once('response', resolve));
    assert.equal(getHeaders[':status'], 405);
    await new Promise<void>((resolve, reject) => client.ping((err) => (err ? reject(err) : resolve())));
  } finally {
    client.close();
    await server.close();
  }
});

const PYTHON_CLIENT = `
import socket, sys
import h2.config, h2.connection, h2.events
port = int(sys.argv[1])
s = socket.create_connection(('127.0.0.1', port))
# h2 asks every request for :path; a CONNECT has none (RFC 9113 section 8.5).
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, validate_outbound_headers=False))
c.initiate_connection()
s.sendall(c.data_to_send())
ids = []
for i in range(3):
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(':method', 'CONNECT'), (':authority', 'python-%d.example:8443' % i), ('user-agent', 'python-h2 interop')])
    c.send_data(sid, (b'hello %d ' % i) * 1000)
    c.end_stream(sid)
    ids.append(sid)
c.ping(b'12345678')
s.sendall(c.data_to_send())
got = {sid: b'' for sid in ids}
status = {}
ended = set()
ping_acked = False
while len(ended) < len(ids) or not ping_acked:
    data = s.recv(65536)
    if not data:
        break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.ResponseReceived):
            status[e.stream_id] = dict((k.decode(), v.decode()) for k, v in e.headers)
        elif isinstance(e, h2.events.DataReceived):
            got[e.stream_id] += e.data
            c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        elif isinstance(e, h2.events.StreamEnded):
            ended.add(e.stream_id)
        elif isinstance(e, h2.events.PingAckReceived):
            ping_acked = e.ping_data == b'12345678'
    s.sendall(c.data_to_send())
for i, sid in enumerate(ids):
    assert status[sid][':status'] == '200', status
    assert status[sid]['x-seen-authority'] == 'python-%d.example:8443' % i, status
    assert got[sid] == (b'hello %d ' % i) * 1000, (sid, len(got[sid]))
assert ping_acked
c.close_connection()
s.sendall(c.data_to_send())
print('python h2 ok', len(ids))
`;

/** The first python3 that has h2 (python3-h2 on Debian), or undefined. */
function pythonWithH2(): string | undefined {
  return ['python3', '/usr/bin/python3'].find((py) => spawnSync(py, ['-c', 'import h2.connection'], { stdio: 'ignore' }).status === 0);
}

test("h2: Python's h2 client to our server: three CONNECT streams echoed, PING acknowledged", async () => {
  const python = pythonWithH2();
  assert.ok(python !== undefined, 'no python3 with the h2 package: install python3-h2 (.ci/run does)');
  const server = await echoServer();
  try {
    const { stdout } = await execFileAsync(python, ['-c', PYTHON_CLIENT, String(server.port)], { encoding: 'utf8', timeout: 20_000 });
    assert.match(stdout, /python h2 ok 3/);
  } finally {
    await server.close();
  }
});

/** Sends raw bytes to a fresh server session; resolves with the GOAWAY code it answered and the session's close error. */
async function violate(bytes: Buffer): Promise<{ goawayCode: number | undefined; error: string | undefined }> {
  const server = await echoServer();
  try {
    const socket = net.connect(server.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('error', () => {});
    socket.write(bytes);
    // A session that lets the violation pass keeps the connection: give up on it after 5 s.
    const giveUp = setTimeout(() => socket.destroy(), 5_000);
    await new Promise((r) => socket.once('close', r));
    clearTimeout(giveUp);
    const data = Buffer.concat(received);
    let goawayCode: number | undefined;
    for (let o = 0; o + 9 <= data.length; ) {
      const length = data.readUIntBE(o, 3);
      if (data[o + 3] === FRAME.GOAWAY) goawayCode = data.readUInt32BE(o + 9 + 4);
      o += 9 + length;
    }
    const session = server.sessions[0] as H2Session;
    const error = server.closeErrors.has(session) ? server.closeErrors.get(session) : 'the session is still open';
    return { goawayCode, error };
  } finally {
    await server.close();
  }
}

const settings = frame(FRAME.SETTINGS, 0, 0);
const headersFor = (streamId: number): Buffer => frame(FRAME.HEADERS, 0x4, streamId, Buffer.from('0207434f4e4e454354', 'hex'));

test('h2: protocol violations end the session with GOAWAY and the right code, and never crash the process', async () => {
  const cases: Array<[string, Buffer, number]> = [
    ['not an HTTP/2 preface', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), H2_ERROR.PROTOCOL_ERROR],
    ['a first frame other than SETTINGS', Buffer.concat([CLIENT_PREFACE, frame(FRAME.PING, 0, 0, Buffer.alloc(8))]), H2_ERROR.PROTOCOL_ERROR],
    ['DATA on a stream never opened', Buffer.concat([CLIENT_PREFACE, settings, frame(FRAME.DATA, 0, 5, Buffer.from('x'))]), H2_ERROR.PROTOCOL_ERROR],
    ['a frame above the 16 KiB maximum', Buffer.concat([CLIENT_PREFACE, settings, Buffer.from([0x01, 0x00, 0x00, 0, 0, 0, 0, 0, 1])]), H2_ERROR.FRAME_SIZE_ERROR],
    ['a PING of the wrong size', Buffer.concat([CLIENT_PREFACE, settings, frame(FRAME.PING, 0, 0, Buffer.alloc(7))]), H2_ERROR.FRAME_SIZE_ERROR],
    ['a connection window pushed past 2^31-1', Buffer.concat([CLIENT_PREFACE, settings, frame(FRAME.WINDOW_UPDATE, 0, 0, Buffer.from('7fffffff', 'hex'))]), H2_ERROR.FLOW_CONTROL_ERROR],
    ['an undecodable header block', Buffer.concat([CLIENT_PREFACE, settings, frame(FRAME.HEADERS, 0x4, 1, Buffer.from('80', 'hex'))]), H2_ERROR.COMPRESSION_ERROR],
    ['a header block interrupted by another frame', Buffer.concat([CLIENT_PREFACE, settings, frame(FRAME.HEADERS, 0, 1, Buffer.from('02', 'hex')), frame(FRAME.PING, 0, 0, Buffer.alloc(8))]), H2_ERROR.PROTOCOL_ERROR],
    ['a stream id going backwards', Buffer.concat([CLIENT_PREFACE, settings, headersFor(5), headersFor(3)]), H2_ERROR.STREAM_CLOSED],
    ['PUSH_PROMISE, with push disabled', Buffer.concat([CLIENT_PREFACE, settings, frame(FRAME.PUSH_PROMISE, 0x4, 1, Buffer.alloc(4))]), H2_ERROR.PROTOCOL_ERROR],
  ];
  for (const [what, bytes, code] of cases) {
    const { goawayCode, error } = await violate(bytes);
    assert.equal(goawayCode, code, `${what}: GOAWAY code`);
    assert.ok(error !== undefined, `${what}: the session closed without an error`);
  }
});

test('h2: DATA beyond a stream window resets that stream only; the session keeps serving', async () => {
  const server = await echoServer();
  const socket = net.connect(server.port, '127.0.0.1');
  try {
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    // The client announces a tiny stream window of its own, then sends more than ours allows on stream 1.
    const overflow = Buffer.alloc(TUNNEL_SESSION_OPTIONS.streamWindow + 1);
    const frames = [CLIENT_PREFACE, settings, headersFor(1)];
    for (let o = 0; o < overflow.length; o += 16_384) frames.push(frame(FRAME.DATA, 0, 1, overflow.subarray(o, Math.min(o + 16_384, overflow.length))));
    frames.push(headersFor(3), frame(FRAME.PING, 0, 0, Buffer.from('pingpong')));
    socket.write(Buffer.concat(frames));
    const seen = async (predicate: (type: number, streamId: number, body: Buffer) => boolean): Promise<void> => {
      for (let i = 0; i < 200; i++) {
        const data = Buffer.concat(received);
        for (let o = 0; o + 9 <= data.length; ) {
          const length = data.readUIntBE(o, 3);
          if (o + 9 + length <= data.length && predicate(data[o + 3] as number, data.readUInt32BE(o + 5), data.subarray(o + 9, o + 9 + length))) return;
          o += 9 + length;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.fail('the frame never came');
    };
    await seen((type, id, body) => type === FRAME.RST_STREAM && id === 1 && body.readUInt32BE(0) === H2_ERROR.FLOW_CONTROL_ERROR);
    await seen((type, id) => type === FRAME.HEADERS && id === 3);
    await seen((type, _id, body) => type === FRAME.PING && body.toString() === 'pingpong');
    assert.equal(server.sessions[0]?.destroyed, false);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test('h2: a client whose preface and frames arrive a byte at a time is served all the same', async () => {
  const server = await echoServer();
  const socket = net.connect(server.port, '127.0.0.1');
  socket.setNoDelay(true);
  try {
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    await new Promise((r) => socket.once('connect', r));
    const bytes = Buffer.concat([CLIENT_PREFACE, settings, headersFor(1), frame(FRAME.DATA, 0x1, 1, Buffer.from('one byte at a time'))]);
    for (const byte of bytes) {
      socket.write(Buffer.from([byte]));
      await new Promise((r) => setTimeout(r, 1));
    }
    for (let i = 0; i < 200; i++) {
      if (Buffer.concat(received).includes(Buffer.from('one byte at a time'))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(Buffer.concat(received).includes(Buffer.from('one byte at a time')), 'the echo never came');
    assert.equal(server.sessions[0]?.destroyed, false);
  } finally {
    socket.destroy();
    await server.close();
  }
});

test('h2: a peer that opens and resets streams at once, or opens streams past the limit again and again, is cut off with ENHANCE_YOUR_CALM', async () => {
  const rst = (id: number): Buffer => frame(FRAME.RST_STREAM, 0, id, Buffer.from('00000008', 'hex'));
  const rapidReset: Buffer[] = [CLIENT_PREFACE, settings];
  // 1,200: the bucket refills at 33 a second while the server works through the burst.
  for (let i = 0; i < 1_200; i++) rapidReset.push(headersFor(2 * i + 1), rst(2 * i + 1));
  const reset = await violate(Buffer.concat(rapidReset));
  assert.equal(reset.goawayCode, H2_ERROR.ENHANCE_YOUR_CALM, 'rapid reset');
  assert.match(String(reset.error), /reset faster/);

  const pastLimit: Buffer[] = [CLIENT_PREFACE, settings];
  for (let i = 0; i < TUNNEL_SESSION_OPTIONS.maxConcurrentStreams + 101; i++) pastLimit.push(headersFor(2 * i + 1));
  const refused = await violate(Buffer.concat(pastLimit));
  assert.equal(refused.goawayCode, H2_ERROR.ENHANCE_YOUR_CALM, 'streams past the limit');
  assert.match(String(refused.error), /beyond the concurrency limit/);
});
