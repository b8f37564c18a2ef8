/**
 * Test support for the agent proxy tests: a throw-away SPIFFE PKI made with openssl at test
 * start, credential helpers, small TCP backends and a log capture. Not a test file itself.
 */
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { StaticCredentialSource, type Credentials } from '../../src/agent/credentials.js';
import { startInbound, type InboundOptions, type InboundProxy } from '../../src/agent/proxy/index.js';

export const CLIENT_ID = 'spiffe://cluster.local/ns/a/sa/client';
export const SERVER_ID = 'spiffe://cluster.local/ns/b/sa/server';
export const INTRUDER_ID = 'spiffe://cluster.local/ns/c/sa/intruder';
export const FOREIGN_ID = 'spiffe://other.local/ns/a/sa/client';

/** A leaf on disk plus its parsed serial. */
export interface Leaf {
  readonly id: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly serial: string;
}

/** Everything one test file needs, in a temp dir removed by `cleanup`. */
export interface Pki {
  readonly dir: string;
  readonly caPath: string;
  readonly foreignCaPath: string;
  /** `expired`: CLIENT_ID's leaf whose notAfter is a day before its notBefore, now. */
  readonly leaves: Record<'server' | 'server2' | 'client' | 'client2' | 'intruder' | 'foreign' | 'expired', Leaf>;
  creds(name: keyof Pki['leaves'], notAfter?: number): Credentials;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeRoot(dir: string, name: string): void {
  writeFileSync(join(dir, `${name}.ext`), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-x509', '-key', `${name}.key`, '-subj', `/O=rampart-test/CN=${name}`, '-days', '1', '-sha256', '-config', '/dev/null', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=hash', '-out', `${name}.crt`], dir);
}

function makeLeaf(dir: string, ca: string, name: string, id: string, days = 1): Leaf {
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=critical,URI:${id}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', '/', '-config', '/dev/null', '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-sha256', '-days', String(days), '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', `0x${Math.floor(Math.random() * 2 ** 48).toString(16)}01`, '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  const certPath = join(dir, `${name}.crt`);
  return { id, certPath, keyPath: join(dir, `${name}.key`), serial: new X509Certificate(readFileSync(certPath)).serialNumber };
}

/** Generates root + leaves for cluster.local and a second trust domain's root + leaf. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-proxy-test-'));
  makeRoot(dir, 'ca');
  makeRoot(dir, 'foreign-ca');
  const leaves = {
    server: makeLeaf(dir, 'ca', 'server', SERVER_ID),
    server2: makeLeaf(dir, 'ca', 'server2', SERVER_ID),
    client: makeLeaf(dir, 'ca', 'client', CLIENT_ID),
    client2: makeLeaf(dir, 'ca', 'client2', CLIENT_ID),
    intruder: makeLeaf(dir, 'ca', 'intruder', INTRUDER_ID),
    foreign: makeLeaf(dir, 'foreign-ca', 'foreign', FOREIGN_ID),
    expired: makeLeaf(dir, 'ca', 'expired', CLIENT_ID, -1),
  };
  const caPath = join(dir, 'ca.crt');
  return {
    dir,
    caPath,
    foreignCaPath: join(dir, 'foreign-ca.crt'),
    leaves,
    creds(name, notAfter) {
      const leaf = leaves[name];
      const pem = readFileSync(leaf.certPath, 'utf8');
      return {
        spiffeId: leaf.id,
        keyPem: readFileSync(leaf.keyPath, 'utf8'),
        certChainPem: pem,
        bundlePem: readFileSync(name === 'foreign' ? join(dir, 'foreign-ca.crt') : caPath, 'utf8'),
        trustDomain: name === 'foreign' ? 'other.local' : 'cluster.local',
        notAfter: notAfter ?? Date.parse(new X509Certificate(pem).validTo),
      };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Log lines captured from a real pino logger. */
export interface LogCapture {
  readonly logger: Logger;
  readonly lines: Array<Record<string, unknown>>;
  /** The same lines as written, for checks that parsing would hide (a key written twice). */
  readonly raw: string[];
  /** Resolves with the first line (past or future) matching `pred`. */
  waitFor(pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

export function captureLogs(): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() === '') continue;
        raw.push(text);
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const w of [...waiters]) {
          if (w.pred(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return {
    logger,
    lines,
    raw,
    waitFor(pred) {
      const found = lines.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

/** A TCP backend that echoes, and on the client's end replies `done:<bytes>` then ends. */
export async function startEchoBackend(): Promise<{ port: number; server: net.Server; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let n = 0;
    s.on('data', (d: Buffer) => {
      n += d.length;
      s.write(d);
    });
    s.on('end', () => s.end(`done:${n}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An echo backend that counts the connections it was given. */
export async function countingBackend(): Promise<{ port: number; accepted(): number; close(): Promise<void> }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Connects, writes `payload`, half-closes, and collects everything until the peer ends. */
export function exchange(port: number, payload: Buffer | string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => s.end(payload));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => {
      s.destroy();
      resolve(Buffer.concat(chunks));
    });
    s.on('error', reject);
  });
}

/** Connects and resolves once the connection is closed, with what was received (for refusals). */
export function connectAndWaitClose(port: number, payload: string): Promise<{ data: string; error: string | undefined }> {
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(payload));
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ data, error }));
  });
}

/** Runs a tool (openssl, python3) with `input` on stdin; resolves with stdout+stderr once it exits. */
export function runTool(cmd: string, args: string[], input: string): Promise<{ out: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 20_000 });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ out, code }));
    p.stdin.end(input);
  });
}

/**
 * A TCP forwarder whose existing connections can be frozen: both directions stop moving while
 * the sockets stay open, as when a peer's host dies or a network partitions without FIN or RST.
 * Connections made after a freeze forward normally.
 */
export async function startFreezableForwarder(targetPort: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const target = net.connect({ host: '127.0.0.1', port: targetPort });
    const pair: [net.Socket, net.Socket] = [client, target];
    pairs.add(pair);
    sockets.add(client).add(target);
    for (const s of pair) {
      s.on('error', () => {});
      s.on('close', () => {
        pairs.delete(pair);
        sockets.delete(s);
        client.destroy();
        target.destroy();
      });
    }
    client.pipe(target);
    target.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      for (const [client, target] of pairs) {
        client.unpipe(target);
        target.unpipe(client);
        client.pause();
        target.pause();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** An inbound that lets CLIENT_ID through to an echo backend, with the server leaf's credentials; `close` stops both. */
export async function startEchoInbound(pki: Pki, logger: Logger, extra: Partial<InboundOptions> = {}): Promise<{ inbound: InboundProxy; close(): Promise<void> }> {
  const backend = await startEchoBackend();
  const inbound = await startInbound({
    listen: { host: '127.0.0.1', port: 0 },
    backend: { host: '127.0.0.1', port: backend.port },
    allow: [CLIENT_ID],
    credentials: new StaticCredentialSource(pki.creds('server')),
    logger,
    ...extra,
  });
  return {
    inbound,
    async close() {
      await inbound.close({ drainMs: 0 });
      await backend.close();
    },
  };
}
