/** A real `rampart ca --workers 2` process tree for a test, started and torn down in one place. */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectLog, onJsonLine, spawnCli } from './cli.js';
import { OpenSsl } from './openssl.js';

/** Resolves with the first JSON log line of `event` the child prints on stdout. */
export function waitForLogEvent(child: ChildProcess, event: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" log line within ${timeoutMs} ms`)), timeoutMs);
    onJsonLine(child, (entry) => {
      if (entry['event'] !== event) return;
      clearTimeout(timer);
      resolve(entry);
    });
    child.once('exit', (code) => reject(new Error(`CA exited with ${code} before "${event}"`)));
  });
}

export interface ClusterCa {
  readonly ca: ChildProcess;
  readonly stateDir: string;
  readonly ssl: OpenSsl;
  readonly started: Record<string, unknown>;
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  /** Every JSON line the CA printed so far, the primary's and its workers'. */
  readonly log: Array<Record<string, unknown>>;
  /** Everything the CA printed so far on stdout and stderr, from its first byte. */
  output(): string;
}

export interface ClusterCaOptions {
  readonly apiPort?: number;
  /** More `rampart ca` flags. */
  readonly extraArgs?: readonly string[];
}

/**
 * Runs `body` against a fresh `rampart ca --workers 2`, then requires a clean exit on SIGTERM;
 * the process tree, openssl helper and state dir are removed whatever happens.
 */
export async function withClusterCa(body: (cluster: ClusterCa) => Promise<void>, options: ClusterCaOptions = {}): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-cluster-'));
  const ssl = await OpenSsl.create();
  const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', `127.0.0.1:${options.apiPort ?? 0}`, '--monitoring-listen', '127.0.0.1:0', '--workers', '2', ...(options.extraArgs ?? [])]);
  const log = collectLog(ca);
  let raw = '';
  for (const stream of [ca.stdout, ca.stderr]) stream?.on('data', (chunk: Buffer) => (raw += chunk.toString('utf8')));
  try {
    const started = await waitForLogEvent(ca, 'ca-started', 150_000);
    await body({ ca, stateDir, ssl, started, apiUrl: String(started['apiUrl']), monitoringUrl: String(started['monitoringUrl']), log, output: () => raw });
    ca.kill('SIGTERM');
    const [code] = (await once(ca, 'exit')) as [number | null];
    assert.equal(code, 0);
  } finally {
    if (ca.exitCode === null) ca.kill('SIGKILL');
    await ssl.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** `rampart_ca_certificates_issued_total{result="ok"}` as the primary exposes it. */
export async function issuedOk(monitoringUrl: string): Promise<number> {
  const metrics = await fetch(`${monitoringUrl}/metrics`).then((r) => r.text());
  const line = metrics.split('\n').find((l) => l.startsWith('rampart_ca_certificates_issued_total{result="ok"}'));
  return Number(line?.split(' ')[1]);
}
