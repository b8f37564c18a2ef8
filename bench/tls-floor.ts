/**
 * Measures the TLS floor under the fleet figure: CPU per new connection in a bare node:tls
 * server with the CA's TLS settings (bench/tls-floor-server.ts) and in the fleet's own agent
 * client (postOverFreshTls), at a concurrency the server keeps up with, so nothing is wasted.
 */
import { availableParallelism } from 'node:os';
import { postOverFreshTls } from './fresh-tls-post.js';
import { trustContext } from './post-csr.js';
import { spawnScript } from './spawn-section.js';
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
}

/** `agents × (server + client) ms / cores`: a lower bound, since both sides share the cores. */
export function handshakeSeconds(agents: number, serverMs: number, clientMs: number, cores: number): number {
  return round((agents * (serverMs + clientMs)) / 1000 / Math.max(1, cores));
}

export async function measureTlsFloor(options: { connections: number; concurrency: number; agents: number }): Promise<TlsFloor> {
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
  // A request the size of an agent's: bearer token and CSR body are opaque to this server.
  const token = 'x'.repeat(900);
  const body = Buffer.alloc(560, 0x41);
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
  await run(Math.min(200, options.connections)); // warm-up: JIT and first-use costs on both sides
  const marked = waitFor('MARKED');
  server.send('MARK');
  await marked;
  const cpuBefore = process.cpuUsage();
  await run(options.connections);
  const cpu = process.cpuUsage(cpuBefore);
  server.send('STOP');
  const serverResult = await server.result;
  if (serverResult.connections !== options.connections) throw new Error(`TLS floor server saw ${serverResult.connections} of ${options.connections} connections`);
  const serverMs = serverResult.cpuMs / options.connections;
  const clientMs = (cpu.user + cpu.system) / 1000 / options.connections;
  const cores = availableParallelism();
  return {
    connections: options.connections,
    concurrency: options.concurrency,
    serverCpuMsPerConnection: round(serverMs, 2),
    clientCpuMsPerConnection: round(clientMs, 2),
    secondsForAgents: handshakeSeconds(options.agents, serverMs, clientMs, cores),
    agents: options.agents,
    cores,
  };
}
