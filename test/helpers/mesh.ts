/**
 * Mesh test support: the demo's in-process mesh (CA + agents + tiny HTTP services, see
 * src/demo/mesh.ts), a continuous client load through agents' outbounds, and checks of what
 * each agent wrote to disk. Not a test file itself.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import tls from 'node:tls';
import { getThrough } from '../../src/demo/http-client.js';
import type { LogRecord } from '../../src/demo/log-sink.js';
import type { Mesh, MeshWorkload } from '../../src/demo/mesh.js';
import { splitPemCertificates } from './openssl.js';
import { eventually } from './poll.js';

export { startMesh, type Mesh, type MeshOptions, type MeshWorkload, type WorkloadSpec } from '../../src/demo/mesh.js';

/** One failed request of the load. */
export interface TrafficFailure {
  readonly at: string;
  readonly phase: string;
  readonly route: string;
  readonly error: string;
}

/** Counts of the load so far. */
export interface TrafficStats {
  readonly total: number;
  readonly ok: number;
  readonly failures: readonly TrafficFailure[];
  /** Successful requests per phase label, in the order phases were entered. */
  readonly perPhase: Readonly<Record<string, number>>;
  /** Successful requests per route (`<port>/<keep-alive|new-connection>`). */
  readonly perRoute: Readonly<Record<string, number>>;
  readonly elapsedMs: number;
}

/** A running client load. */
export interface Traffic {
  /** Labels the requests that complete from now on. */
  phase(label: string): void;
  stats(): TrafficStats;
  /** Resolves once `n` more requests succeeded than when called (for pacing the scenario). */
  waitForRequests(n: number, timeoutMs?: number): Promise<void>;
  /** Stops the loops after their current request and closes the keep-alive sockets. */
  stop(): Promise<TrafficStats>;
}

/** A route of the load: a plain-TCP port (an agent's outbound) and what a good answer starts with. */
export interface TrafficRoute {
  readonly name: string;
  readonly port: number;
  readonly expect: string;
}

/**
 * Runs, for every route, one loop on a keep-alive connection and one opening a new connection
 * per request, back to back with `pauseMs` between requests. Any answer that is not 200 with
 * the expected body is a failure.
 */
export function startTraffic(routes: readonly TrafficRoute[], options: { pauseMs?: number } = {}): Traffic {
  const pauseMs = options.pauseMs ?? 10;
  const startedAt = Date.now();
  let phase = 'start';
  let total = 0;
  let ok = 0;
  const failures: TrafficFailure[] = [];
  const perPhase: Record<string, number> = { start: 0 };
  const perRoute: Record<string, number> = {};
  const waiters = new Set<{ target: number; resolve: () => void }>();
  let running = true;
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });

  const loop = async (route: TrafficRoute, reuse: boolean): Promise<void> => {
    const key = `${route.name}/${reuse ? 'keep-alive' : 'new-connection'}`;
    perRoute[key] = 0;
    while (running) {
      const r = await getThrough(route.port, reuse ? { agent: keepAlive } : {});
      total++;
      if (r.ok && r.status === 200 && r.body.startsWith(route.expect)) {
        ok++;
        perPhase[phase] = (perPhase[phase] ?? 0) + 1;
        perRoute[key] = (perRoute[key] ?? 0) + 1;
        for (const w of [...waiters]) {
          if (ok >= w.target) {
            waiters.delete(w);
            w.resolve();
          }
        }
      } else {
        failures.push({ at: new Date().toISOString(), phase, route: key, error: r.ok ? `HTTP ${r.status}: ${r.body.slice(0, 200)}` : r.error });
      }
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  };
  const loops = routes.flatMap((route) => [loop(route, true), loop(route, false)]);
  const stats = (): TrafficStats => ({ total, ok, failures: [...failures], perPhase: { ...perPhase }, perRoute: { ...perRoute }, elapsedMs: Date.now() - startedAt });
  let stopping: Promise<TrafficStats> | undefined;
  return {
    phase(label) {
      phase = label;
      perPhase[label] ??= 0;
    },
    stats,
    waitForRequests(n, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const w = {
          target: ok + n,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`the load did not complete ${n} more requests within ${timeoutMs / 1000} s (${JSON.stringify(stats())})`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    stop() {
      stopping ??= (async () => {
        running = false;
        await Promise.all(loops);
        keepAlive.destroy();
        return stats();
      })();
      return stopping;
    },
  };
}

/** Polls `check` every 100 ms until it returns something other than undefined/false. */
export function until<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  return eventually(what, check, timeoutMs, 100);
}

/** What an agent's output directory holds right now. */
export interface AgentFiles {
  readonly leaf: X509Certificate;
  readonly chainPems: string[];
  readonly rootPems: string[];
  readonly rootFingerprints: string[];
}

/** Reads `cert-chain.pem` and `root-cert.pem` of a workload's agent. */
export function agentFiles(w: MeshWorkload): AgentFiles {
  const chainPems = splitPemCertificates(readFileSync(join(w.outDir, 'cert-chain.pem'), 'utf8'));
  const rootPems = splitPemCertificates(readFileSync(join(w.outDir, 'root-cert.pem'), 'utf8'));
  if (chainPems.length === 0) throw new Error(`${w.name}: cert-chain.pem holds no certificate`);
  return { leaf: new X509Certificate(chainPems[0]!), chainPems, rootPems, rootFingerprints: rootPems.map((p) => new X509Certificate(p).fingerprint256) };
}

/** True when `chainPems` (leaf first) chains up to `rootPem` by signatures (node's own check). */
export function chainsTo(chainPems: readonly string[], rootPem: string): boolean {
  const certs = chainPems.map((p) => new X509Certificate(p));
  const root = new X509Certificate(rootPem);
  for (let i = 0; i + 1 < certs.length; i++) if (!certs[i]!.checkIssued(certs[i + 1]!) || !certs[i]!.verify(certs[i + 1]!.publicKey)) return false;
  const top = certs[certs.length - 1]!;
  return top.checkIssued(root) && top.verify(root.publicKey);
}

/** The chain (leaf first, PEM) the CA serves on its API, read over a real TLS connection. */
export function caServingChain(apiUrl: string, trustedPem: string): Promise<{ authorized: boolean; error: string | null; chainPems: string[] }> {
  const url = new URL(apiUrl);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: Number(url.port), servername: url.hostname, ca: trustedPem, rejectUnauthorized: false }, () => {
      const chainPems: string[] = [];
      let cert = socket.getPeerCertificate(true);
      const seen = new Set<string>();
      while (cert && cert.raw && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chainPems.push(new X509Certificate(cert.raw).toString());
        if (!cert.issuerCertificate || cert.issuerCertificate === cert) break;
        cert = cert.issuerCertificate;
      }
      const authorized = socket.authorized;
      const error = socket.authorizationError ? String(socket.authorizationError) : null;
      socket.end();
      resolve({ authorized, error, chainPems });
    });
    socket.on('error', reject);
  });
}

/** Log lines of every agent of the mesh that record a connection or session that did not end well. */
export function badConnectionLines(mesh: Mesh): Array<{ agent: string; line: LogRecord }> {
  const out: Array<{ agent: string; line: LogRecord }> = [];
  for (const w of mesh.workloads.values()) {
    for (const line of w.logs.find((r) => (r['direction'] === 'inbound' || r['direction'] === 'outbound') && typeof r['result'] === 'string' && r['result'] !== 'ok')) {
      out.push({ agent: w.name, line });
    }
  }
  return out;
}
