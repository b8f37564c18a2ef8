/**
 * Issuance latency of 1,000 sequential requests over one HTTPS keep-alive connection (the
 * figure the CA server issue asks for). Usage:
 *   node --import tsx bench/sequential-latency.ts --url https://localhost:8443 --ca-file certs/root-cert.pem --token-file web.token
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { makeCsrPool } from './csr-pool.js';
import { argString } from './result-line.js';

const url = new URL('/v1/certificates', argString('url', 'https://localhost:8443'));
const token = readFileSync(argString('token-file', ''), 'utf8').trim();
const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(argString('ca-file', 'certs/root-cert.pem'), 'utf8') });
const csrs = makeCsrPool(64);

function post(csr: string): Promise<number> {
  const body = JSON.stringify({ csr });
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

for (let i = 0; i < 100; i++) await post(csrs[i % csrs.length] as string);
const latencies: number[] = [];
for (let i = 0; i < 1000; i++) latencies.push(await post(csrs[i % csrs.length] as string));
latencies.sort((a, b) => a - b);
const at = (q: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] as number).toFixed(2);
process.stdout.write(`${JSON.stringify({ requests: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) })}\n`);
agent.destroy();
