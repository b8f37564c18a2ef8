/**
 * The TLS floor under the fleet figure: a bare node:tls server with the CA's own TLS settings
 * (apiTlsOptions) and a serving chain issued the way the CA issues its own, answering each
 * connection's first bytes with a canned 200 the size of a real answer and closing. What it
 * spends per connection is what a Node CA spends on a new agent's handshake before any HTTP
 * parsing, authentication or signing.
 * Prints `READY {"port","rootPem"}`; stdin `MARK` restarts its CPU count (answers `MARKED`),
 * `STOP` emits {cpuMs, connections} since the mark and exits.
 */
import { createServer } from 'node:tls';
import { createInterface } from 'node:readline';
import { signingContextFor } from '../src/core/ca/authority.js';
import { bootstrapState, DEFAULT_LIFETIMES } from '../src/core/ca/rotation.js';
import { systemClock } from '../src/core/clock.js';
import { certificatePem, decodeCertificates } from '../src/core/pki/pem.js';
import { apiTlsOptions, issueServingCertificate } from '../src/server/tls.js';
import { emitResult } from './result-line.js';

const TRUST_DOMAIN = 'cluster.local';
const state = bootstrapState(TRUST_DOMAIN, Date.now(), DEFAULT_LIFETIMES);
const context = signingContextFor(state);
const serving = issueServingCertificate(context, { trustDomain: TRUST_DOMAIN, names: ['localhost', '127.0.0.1', '::1'], ttlMs: 3_600_000, clock: systemClock });
const body = JSON.stringify({ certChain: decodeCertificates(serving.certChainPem).map(certificatePem), trustBundle: context.bundlePems });
const answer = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, 'latin1');

let connections = 0;
let cpuAtMark = process.cpuUsage();
const server = createServer(apiTlsOptions(serving, context.bundlePems), (socket) => {
  socket.on('error', () => socket.destroy());
  socket.once('data', () => {
    connections++;
    socket.end(answer);
  });
});
server.on('tlsClientError', (_err, socket) => socket.destroy());

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  process.stdout.write(`READY ${JSON.stringify({ port, rootPem: state.roots[0]!.certPem })}\n`);
});

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'MARK') {
    connections = 0;
    cpuAtMark = process.cpuUsage();
    process.stdout.write('MARKED\n');
  } else if (line === 'STOP') {
    const cpu = process.cpuUsage(cpuAtMark);
    emitResult({ cpuMs: (cpu.user + cpu.system) / 1000, connections });
    break;
  }
}
server.close();
process.exit(0);
