/**
 * Stand-alone entry for the mtls-proxy benchmark harness until the agent CLI exists:
 *   node --import tsx bench/proxy-entry.ts inbound  LISTEN_PORT BACKEND_PORT  CERTDIR
 *   node --import tsx bench/proxy-entry.ts outbound LISTEN_PORT UPSTREAM_PORT CERTDIR
 * Env: RAMPART_TUNNEL=auto|off, BENCH_TLS_VERSION=1.2|1.3, BENCH_TLS_RESUME=0|1, LOG_LEVEL,
 * RAMPART_LOG_SYNC=0|1.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { StaticCredentialSource } from '../src/agent/credentials.js';
import { startInbound } from '../src/agent/proxy/inbound.js';
import { startOutbound } from '../src/agent/proxy/outbound.js';
import type { TlsTuning } from '../src/agent/proxy/tls-settings.js';
import { createAgentRegistry } from '../src/agent/agent-metrics.js';
import { createMonitoringServer } from '../src/server/monitoring.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/a/sa/client';
const SERVER_ID = 'spiffe://cluster.local/ns/b/sa/server';

const [role, listenArg, targetArg, certDir] = process.argv.slice(2);
if ((role !== 'inbound' && role !== 'outbound') || listenArg === undefined || targetArg === undefined || certDir === undefined) {
  process.stderr.write('usage: proxy-entry.ts inbound|outbound LISTEN_PORT TARGET_PORT CERTDIR\n');
  process.exit(2);
}
// One line per connection adds up at thousands of connections per second: batch writes
// (minLength) instead of one write(2) per line, and flush at least every second. Synchronous
// batched writes keep libuv's thread pool (and its memory) out of the process;
// RAMPART_LOG_SYNC=0 switches to asynchronous writes.
const destination = pino.destination({ dest: 1, sync: process.env['RAMPART_LOG_SYNC'] !== '0', minLength: 8_192 });
setInterval(() => destination.flush(), 1_000).unref();
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'info' }, destination);
const name = role === 'inbound' ? 'server' : 'client';
const certPem = readFileSync(join(certDir, `${name}.crt`), 'utf8');
const credentials = new StaticCredentialSource({
  spiffeId: role === 'inbound' ? SERVER_ID : CLIENT_ID,
  keyPem: readFileSync(join(certDir, `${name}.key`), 'utf8'),
  certChainPem: certPem,
  bundlePem: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
  trustDomain: 'cluster.local',
  notAfter: Date.parse(new X509Certificate(certPem).validTo),
});
const tlsTuning: TlsTuning =
  process.env['BENCH_TLS_VERSION'] === '1.2'
    ? { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }
    : { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', ciphers: 'TLS_AES_128_GCM_SHA256' };
const tunnel = process.env['RAMPART_TUNNEL'] === 'off' ? 'off' : 'auto';
const listen = { host: '127.0.0.1', port: Number(listenArg) };
const target = { host: '127.0.0.1', port: Number(targetArg) };

// Metrics and the monitoring listener as the shipped agent has them (on by default there), so
// the memory and CPU measured include them.
const registry = createAgentRegistry();
const monitoring = createMonitoringServer({ registry, ready: () => true });
// No top-level await: the harness plugin bundles this file as CommonJS, as the agent container
// runs the agent (dist/rampart-agent.cjs), so the memory measured is that of the shipped form.
async function main(): Promise<void> {
  await monitoring.listen({ host: '127.0.0.1', port: 0 });

  const proxy =
    role === 'inbound'
      ? await startInbound({ listen, backend: target, allow: [CLIENT_ID], credentials, logger, tunnel, tls: tlsTuning, registry })
      : await startOutbound({ listen, upstream: target, expectedId: SERVER_ID, credentials, logger, tunnel, tls: tlsTuning, registry, resumeSessions: process.env['BENCH_TLS_RESUME'] === '1' });

  process.once('SIGTERM', () => {
    // The harness reads RSS from /proc; this breaks it down for tuning (after a full GC when
    // node runs with --expose-gc, to tell leaks from garbage). node:v8 is loaded only now: the
    // shipped agent never loads it, and loading it at start put about 170 KB into the measured
    // agent that the shipped one does not carry.
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) gc();
    const memory = process.memoryUsage();
    void import('node:v8')
      .then(({ getHeapSpaceStatistics }) => {
        const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
        logger.info({ memory, spaces }, 'memory at shutdown');
      })
      .then(() => Promise.all([proxy.close({ drainMs: 2_000 }), monitoring.close()]))
      .then(() => {
        destination.flushSync();
        process.exit(0);
      });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`proxy-entry: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
