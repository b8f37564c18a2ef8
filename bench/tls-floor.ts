/**
 * Measures the TLS floor under the fleet figure: CPU per new connection in a bare node:tls
 * server with the CA's TLS settings (bench/tls-floor-server.ts) and in the fleet's own agent
 * client (postOverFreshTls, or the compiled bench/fleet-go when the fleet ran that), at a
 * concurrency the server keeps up with, so nothing is wasted.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { postOverFreshTls } from './fresh-tls-post.js';
import { trustContext } from './post-csr.js';
import { spawnProgram, spawnScript } from './spawn-section.js';
import { round } from './stats.js';

export interface TlsFloor {
  readonly connections: number;
  readonly concurrency: number;
  readonly serverCpuMsPerConnection: number;
  readonly clientCpuMsPerConnection: number;
  /** Seconds the handshakes of `agents` would take with every core busy and no work wasted. */
  readonly secondsForAgents: number;
  readonly agents: number;
  readonly cores: number;
  readonly client: 'node' | 'go';
}

// A request the size of an agent's (bearer token and CSR body); both are opaque to the floor
// server. The Go client is told these sizes, so both clients send the same request.
const FLOOR_TOKEN_BYTES = 900;
const FLOOR_BODY_BYTES = 560;

/** `agents × (server + client) ms / cores`: a lower bound, since both sides share the cores. */
export function handshakeSeconds(agents: number, serverMs: number, clientMs: number, cores: number): number {
  return round((agents * (serverMs + clientMs)) / 1000 / Math.max(1, cores));
}

/** CPU seconds the Go client spent on `connections` connections after its warm-up. */
async function goClientCpuSeconds(binary: string, port: number, rootFile: string, connections: number, concurrency: number, markServer: () => Promise<void>): Promise<number> {
  const args = ['--url', `https://localhost:${port}`, '--ca-file', rootFile, '--floor', String(connections), '--concurrency', String(concurrency), '--token-bytes', String(FLOOR_TOKEN_BYTES), '--body-bytes', String(FLOOR_BODY_BYTES)];
  const client = spawnProgram<{ cpuSeconds: number }>(binary, args, 'bench/fleet-go --floor', 120_000);
  const failed = client.result.then(() => {
    throw new Error('the Go floor client exited before its warm-up ended');
  });
  failed.catch(() => undefined);
  await Promise.race([new Promise<void>((resolve) => client.onLine((l) => l === 'WARMED' && resolve())), failed]);
  await markServer();
  client.send('GO');
  return (await client.result).cpuSeconds;
}

export async function measureTlsFloor(options: { connections: number; concurrency: number; agents: number; goClient?: string }): Promise<TlsFloor> {
  const server = spawnScript<{ cpuMs: number; connections: number }>('tls-floor-server.ts', [], 120_000);
  // A server that dies before it answers fails the measurement instead of hanging it.
  const exitedEarly = server.result.then(() => {
    throw new Error('the TLS floor server exited before answering');
  });
  exitedEarly.catch(() => undefined);
  const waitFor = (prefix: string): Promise<string> =>
    Promise.race([new Promise<string>((resolve) => server.onLine((l) => l.startsWith(prefix) && resolve(l.slice(prefix.length)))), exitedEarly]);
  const ready = JSON.parse(await waitFor('READY ')) as { port: number; rootPem: string };
  const target = { host: '127.0.0.1', port: ready.port, servername: 'localhost', secureContext: trustContext(ready.rootPem), timeoutMs: 15_000 };
  const token = 'x'.repeat(FLOOR_TOKEN_BYTES);
  const body = Buffer.alloc(FLOOR_BODY_BYTES, 0x41);
  const run = async (count: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: options.concurrency }, async () => {
        while (next++ < count) {
          const r = await postOverFreshTls(target, token, body);
          if (r.status !== 200) throw new Error(`TLS floor connection failed: ${r.status} ${r.error ?? ''}`);
        }
      }),
    );
  };
  const markServer = async (): Promise<void> => {
    const marked = waitFor('MARKED');
    server.send('MARK');
    await marked;
  };
  let clientCpuSeconds: number;
  if (options.goClient === undefined) {
    await run(Math.min(200, options.connections)); // warm-up: JIT and first-use costs on both sides
    await markServer();
    const cpuBefore = process.cpuUsage();
    await run(options.connections);
    const cpu = process.cpuUsage(cpuBefore);
    clientCpuSeconds = (cpu.user + cpu.system) / 1e6;
  } else {
    const rootDir = mkdtempSync(join(tmpdir(), 'rampart-floor-root-'));
    try {
      const rootFile = join(rootDir, 'root.pem');
      writeFileSync(rootFile, ready.rootPem);
      clientCpuSeconds = await goClientCpuSeconds(options.goClient, ready.port, rootFile, options.connections, options.concurrency, markServer);
    } finally {
      rmSync(rootDir, { recursive: true, force: true });
    }
  }
  server.send('STOP');
  const serverResult = await server.result;
  if (serverResult.connections !== options.connections) throw new Error(`TLS floor server saw ${serverResult.connections} of ${options.connections} connections`);
  const serverMs = serverResult.cpuMs / options.connections;
  const clientMs = (clientCpuSeconds * 1000) / options.connections;
  const cores = availableParallelism();
  return {
    connections: options.connections,
    concurrency: options.concurrency,
    serverCpuMsPerConnection: round(serverMs, 2),
    clientCpuMsPerConnection: round(clientMs, 2),
    secondsForAgents: handshakeSeconds(options.agents, serverMs, clientMs, cores),
    agents: options.agents,
    cores,
    client: options.goClient === undefined ? 'node' : 'go',
  };
}
