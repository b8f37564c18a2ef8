/**
 * Shared pieces of the root-rotation integration tests: a real `rampart ca` child process on
 * loopback port 0 (its URLs read from the `ca-started` log line), admin calls over HTTPS, and the
 * checks that a state directory left behind is consistent.
 */
import { type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { strict as assert } from 'node:assert';
import { mintDevToken } from '../../src/authn/dev.js';
import { decodeState } from '../../src/store/state-codec.js';
import type { CaState } from '../../src/core/ports.js';
import { onJsonLine, spawnCli } from '../helpers/cli.js';
import { httpsJson, type HttpsResult } from '../helpers/https.js';

export interface CaProcess {
  readonly child: ChildProcess;
  readonly apiUrl: string;
  readonly monitoringUrl: string;
  /** Every JSON log line so far (parsed). */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM and wait for the exit (no-op once exited). */
  stop(): Promise<void>;
}

export interface SpawnedCa {
  readonly child: ChildProcess;
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the API and monitoring URLs on `ca-started`, rejects if the process exits first. */
  readonly started: Promise<{ apiUrl: string; monitoringUrl: string }>;
}

/** Spawns `rampart ca --state-dir DIR --listen 127.0.0.1:0 --monitoring-listen 127.0.0.1:0 ARGS`. */
export function spawnCa(stateDir: string, args: readonly string[] = [], env: Record<string, string> = {}): SpawnedCa {
  const childEnv = { ...process.env, ...env };
  if (env['RAMPART_CRASH_AT'] === undefined) delete childEnv['RAMPART_CRASH_AT'];
  const child = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', ...args], { env: childEnv });
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const started = new Promise<{ apiUrl: string; monitoringUrl: string }>((resolve, reject) => {
    onJsonLine(child, (entry) => {
      logs.push(entry);
      if (entry['event'] === 'ca-started') resolve({ apiUrl: String(entry['apiUrl']), monitoringUrl: String(entry['monitoringUrl']) });
    });
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
    void exited.then(({ code, signal }) => reject(new Error(`rampart ca exited (code ${code}, signal ${signal}) before it started:\n${stderr.join('')}`)));
  });
  started.catch(() => undefined);
  return { child, logs, stderr, exited, started };
}

/** Spawns a CA and waits until it listens. */
export async function startCaProcess(stateDir: string, args: readonly string[] = [], env: Record<string, string> = {}): Promise<CaProcess> {
  const spawned = spawnCa(stateDir, args, env);
  let urls: { apiUrl: string; monitoringUrl: string };
  try {
    urls = await spawned.started;
  } catch (err) {
    spawned.child.kill('SIGKILL');
    throw err;
  }
  return {
    ...spawned,
    ...urls,
    async stop() {
      if (spawned.child.exitCode === null && spawned.child.signalCode === null) spawned.child.kill('SIGTERM');
      await spawned.exited;
    },
  };
}

/** The token of the default admin identity, minted with the dev issuer of `stateDir`. */
export function adminToken(stateDir: string): Promise<string> {
  return mintDevToken({ stateDir, namespace: 'rampart-system', serviceAccount: 'rampart-admin' });
}

/** The state the CA left in `stateDir`, decoded by the same codec the store uses. */
export function readState(stateDir: string): CaState {
  return decodeState(readFileSync(join(stateDir, 'state.json'), 'utf8'));
}

/** The fingerprints (lowercase hex SHA-256) of the certificates in a PEM bundle. */
export function pemFingerprints(pem: string): string[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b).fingerprint256.replace(/:/g, '').toLowerCase());
}

/** Invariants of a state at rest, and that `root-cert.pem` publishes exactly its roots. */
export function assertConsistentDir(stateDir: string): CaState {
  const state = readState(stateDir);
  assert.ok(state.roots.length > 0, 'bundle is not empty');
  assert.equal(state.roots.filter((r) => r.phase === 'active').length, 1, 'exactly one active root');
  for (const r of state.roots) {
    assert.ok(r.intermediate.notAfter <= r.notAfter, 'no intermediate outlives its root');
    const inter = new X509Certificate(r.intermediate.certPem);
    const root = new X509Certificate(r.certPem);
    if (r.intermediate.chainPems.length === 0) assert.ok(inter.verify(root.publicKey), 'each intermediate is signed by its root');
  }
  const published = pemFingerprints(readFileSync(join(stateDir, 'root-cert.pem'), 'utf8'));
  assert.deepEqual(published, state.roots.map((r) => r.fingerprint), 'root-cert.pem holds exactly the roots of the state');
  return state;
}

/** One admin call (`status` or a rotation step) over HTTPS, trusting `bundlePem`. */
export function adminCall(apiUrl: string, bundlePem: string, token: string, step: 'status' | 'prepare' | 'activate' | 'retire', force = false): Promise<HttpsResult> {
  if (step === 'status') return httpsJson(`${apiUrl}/v1/admin/status`, { ca: bundlePem, token });
  return httpsJson(`${apiUrl}/v1/admin/roots/${step}`, { ca: bundlePem, token, body: force ? { force: true } : {} });
}

/** The text of a Prometheus exposition line's value for `name{labels}`, or undefined. */
export function metricValue(exposition: string, name: string, labels = ''): number | undefined {
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#')) continue;
    const [key, value] = line.split(' ');
    if (key === `${name}${labels}` || (labels === '' && key === name)) return Number(value);
  }
  return undefined;
}

/**
 * Runs `rampart ARGS` to completion without blocking this process (an in-process CA must keep
 * answering while the CLI talks to it, which spawnSync would prevent).
 */
export async function runCli(args: readonly string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { status, stdout, stderr };
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs` (a safety net, not a timing claim). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
