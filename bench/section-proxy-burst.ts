/**
 * Agent proxy under a connection burst: N long-lived application connections opened at once
 * through outbound -> pooled HTTP/2 mTLS tunnel -> inbound -> a backend that answers on
 * connect. Reports how long until every connection got its answer, how many did within 2 s and
 * how many tunnel sessions carried them. Both proxies, the backend and the clients share one
 * process (a figure for regressions, not a side-by-side with other proxies).
 * Usage: node --import tsx bench/section-proxy-burst.ts [--connections 3000] [--deadline 30]
 */
import net from 'node:net';
import { pino } from 'pino';
import { StaticCredentialSource } from '../src/agent/credentials.js';
import { startInbound, startOutbound } from '../src/agent/proxy/index.js';
import { signingContextFor } from '../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../src/core/ca/rotation.js';
import { systemClock } from '../src/core/clock.js';
import { issueServingCertificate } from '../src/server/tls.js';
import { argNumber, emitResult, note } from './result-line.js';

const connections = argNumber('connections', 3000);
const deadlineMs = argNumber('deadline', 30) * 1000;

// Both agents hold an SVID from a throw-away CA (the same identity: the figure is about the pool).
const state = bootstrapState('cluster.local', Date.now(), DEFAULT_LIFETIMES);
const context = signingContextFor(state);
const svid = issueServingCertificate(context, { trustDomain: 'cluster.local', names: [], ttlMs: 3_600_000, clock: systemClock });
const spiffeId = 'spiffe://cluster.local/ns/rampart-system/sa/rampart-ca';
const credentials = (): StaticCredentialSource =>
  new StaticCredentialSource({ spiffeId, keyPem: svid.keyPem, certChainPem: svid.certChainPem, bundlePem: context.bundlePems.join(''), trustDomain: 'cluster.local', notAfter: svid.notAfter });
// Warnings only (each connection cut at the end logs one), to stderr: stdout carries the result.
const logger = pino({ level: 'error' }, pino.destination(2));

const held: net.Socket[] = [];
const backend = net.createServer((s) => {
  held.push(s);
  s.on('error', () => undefined);
  s.write('ok');
});
await new Promise<void>((resolve) => backend.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: (backend.address() as net.AddressInfo).port }, allow: [spiffeId], credentials: credentials(), logger });
const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: spiffeId, credentials: credentials(), logger });

const clients: net.Socket[] = [];
const started = performance.now();
let answered = 0;
let within2s = 0;
let lastAnswerMs = 0;
const errors: Record<string, number> = {};
await Promise.all(
  Array.from({ length: connections }, () =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: outbound.address.port });
      clients.push(socket);
      socket.once('data', () => {
        const at = performance.now() - started;
        answered++;
        if (at < 2000) within2s++;
        lastAnswerMs = Math.max(lastAnswerMs, at);
        resolve();
      });
      socket.on('error', (e: NodeJS.ErrnoException) => {
        errors[e.code ?? e.message] = (errors[e.code ?? e.message] ?? 0) + 1;
        resolve();
      });
      setTimeout(resolve, deadlineMs).unref();
    }),
  ),
);
const result = {
  connections,
  answered,
  answeredWithin2s: within2s,
  secondsToAllAnswered: answered === connections ? Math.round(lastAnswerMs / 10) / 100 : null,
  tunnelSessions: outbound.tunnelSessions,
  errors,
};
note(`proxy burst: ${JSON.stringify(result)}`);
for (const c of clients) c.destroy();
for (const h of held) h.destroy();
await outbound.close({ drainMs: 0 });
await inbound.close({ drainMs: 0 });
backend.close();
emitResult(result);
process.exit(0);
