/**
 * Starts a real CA (HTTPS API + monitoring) in this process on loopback port 0, with a temporary
 * state directory and a log capture, for integration tests.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import 'reflect-metadata';
import { loadCaConfig, type CaFlags } from '../../src/config/ca-config.js';
import { mintDevToken } from '../../src/authn/dev.js';
import { createLogger } from '../../src/observability/logger.js';
import { startCa, type RunningCa } from '../../src/runtime/start-ca.js';
import type { Clock } from '../../src/core/clock.js';

export interface TestCa extends RunningCa {
  readonly stateDir: string;
  /** Every log line the CA wrote, raw JSON text. */
  readonly logLines: string[];
  /** The current trust bundle PEM as the file store publishes it. */
  rootCertPem(): string;
  token(namespace: string, serviceAccount: string, extra?: { audience?: string; ttlSeconds?: number }): Promise<string>;
  /** Stops the CA and removes its state directory (unless keepState). */
  close(options?: { keepState?: boolean }): Promise<void>;
}

export async function startTestCa(flags: CaFlags = {}, options: { clock?: Clock; stateDir?: string; apiHandshakeTimeoutMs?: number } = {}): Promise<TestCa> {
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'rampart-ca-'));
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logLines.push(line);
      done();
    },
  });
  const config = loadCaConfig({ listen: '127.0.0.1:0', 'monitoring-listen': '127.0.0.1:0', 'state-dir': stateDir, ...flags }, {});
  const logger = createLogger({ name: 'rampart-ca', level: 'debug', destination: sink });
  const ca = await startCa(config, {
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.apiHandshakeTimeoutMs !== undefined ? { apiHandshakeTimeoutMs: options.apiHandshakeTimeoutMs } : {}),
  });
  return {
    ...ca,
    stateDir,
    logLines,
    rootCertPem: () => readFileSync(join(stateDir, 'root-cert.pem'), 'utf8'),
    token: (namespace: string, serviceAccount: string, extra: { audience?: string; ttlSeconds?: number } = {}) =>
      mintDevToken({ stateDir, namespace, serviceAccount, ...extra }),
    async close(closeOptions: { keepState?: boolean } = {}) {
      await ca.stop();
      if (!closeOptions.keepState) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
