/**
 * A `rampart ca` start that fails leaves its state directory as it found it. A first start used
 * to keep the root and intermediate it had just generated when a port was taken, and the next
 * start then signed under a root that no admin had ever seen served. A start that found state
 * must never change it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, runCliSync, spawnCli } from '../helpers/cli.js';
import { freePort, holdPort } from '../helpers/ports.js';

let releaseHeld: () => void;
let heldPort: number;
let dir: string;

before(async () => {
  ({ port: heldPort, release: releaseHeld } = await holdPort());
  dir = mkdtempSync(join(tmpdir(), 'rampart-rollback-'));
});

after(() => {
  releaseHeld();
  rmSync(dir, { recursive: true, force: true });
});

type LogLine = { event?: string; msg?: string; fingerprint?: string; rootFingerprint?: string; removedFiles?: string[]; restoredFiles?: string[]; removedDirectories?: string[] };

function logLines(stdout: string): LogLine[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Runs `rampart ca` with the API (or monitoring) port taken; it must exit 2 by itself. */
async function failedStart(stateDir: string, options: { taken?: '--listen' | '--monitoring-listen'; workers?: number } = {}): Promise<{ stdout: string; stderr: string; lines: LogLine[] }> {
  const other = await freePort();
  const taken = options.taken ?? '--listen';
  const api = taken === '--listen' ? heldPort : other;
  const monitoring = taken === '--listen' ? other : heldPort;
  const { code, stdout, stderr } = await runCli(['ca', '--state-dir', stateDir, '--listen', `127.0.0.1:${api}`, '--monitoring-listen', `127.0.0.1:${monitoring}`, '--workers', String(options.workers ?? 1)]);
  assert.equal(code, 2, stderr);
  assert.match(stderr, new RegExp(`rampart ca: ${taken} 127\\.0\\.0\\.1:${heldPort}: cannot listen.*RAMPART_ERR_LISTEN_FAILED`));
  return { stdout, stderr, lines: logLines(stdout) };
}

/** Starts `rampart ca` on free ports until it is up, then stops it; returns its log lines. */
async function startAndStop(stateDir: string): Promise<LogLine[]> {
  const child = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
  let stdout = '';
  child.stderr?.resume();
  const up = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 60_000);
    child.stdout?.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes('"event":"ca-started"')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    child.once('exit', () => resolve(false));
  });
  child.kill(up ? 'SIGTERM' : 'SIGKILL');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.ok(up, `the CA starts: ${stdout.slice(-400)}`);
  assert.equal(code, 0);
  return logLines(stdout);
}

/** Every file in `stateDir` with its bytes. */
function contents(stateDir: string): Map<string, string> {
  return new Map(readdirSync(stateDir).map((name) => [name, readFileSync(join(stateDir, name), 'latin1')]));
}

const fresh = [
  { name: 'one process, API port taken', taken: '--listen', workers: 1 },
  { name: 'one process, monitoring port taken', taken: '--monitoring-listen', workers: 1 },
  { name: '--workers 2, API port taken', taken: '--listen', workers: 2 },
] as const;

for (const c of fresh) {
  test(`${c.name}: the state this start created is removed, directories included, and the rollback is logged`, { timeout: 120_000 }, async () => {
    const parent = join(dir, `fresh-${c.workers}-${c.taken.slice(2)}`);
    const stateDir = join(parent, 'ca');
    const run = await failedStart(stateDir, c);
    const created = run.lines.find((l) => l.event === 'root-created');
    assert.ok(created?.fingerprint, `the start created a root first: ${run.stdout.slice(-600)}`);
    assert.equal(existsSync(parent), false, `nothing left of ${parent}: ${existsSync(stateDir) ? readdirSync(stateDir).join(', ') : ''}`);

    const rollback = run.lines.filter((l) => l.event === 'failed-start-rolled-back');
    assert.equal(rollback.length, 1, run.stdout.slice(-800));
    assert.equal(rollback[0]?.rootFingerprint, created.fingerprint, 'the log names the root that was never served');
    assert.deepEqual([...(rollback[0]?.removedFiles ?? [])].sort(), ['dev-issuer.jwks.json', 'dev-issuer.key.pem', 'root-cert.pem', 'state.json']);
    assert.deepEqual(rollback[0]?.removedDirectories, [stateDir, parent]);
    assert.doesNotMatch(run.stdout + run.stderr, /PRIVATE KEY|BEGIN CERTIFICATE/, 'no key material or certificates in the logs');
  });
}

test('a directory without state keeps what it held: files from before stay byte for byte, only new ones go', { timeout: 120_000 }, async () => {
  const stateDir = join(dir, 'no-state');
  mkdirSync(stateDir, { mode: 0o700 });
  // `rampart token` before the first CA start creates the dev issuer; a stale bundle and a note too.
  const token = runCliSync(['token', '--namespace', 'default', '--service-account', 'web', '--state-dir', stateDir]);
  assert.equal(token.status, 0, token.stderr);
  writeFileSync(join(stateDir, 'root-cert.pem'), 'left from an earlier CA\n', { mode: 0o644 });
  writeFileSync(join(stateDir, 'notes.txt'), 'the operator\'s\n');
  const beforeStart = contents(stateDir);
  assert.deepEqual([...beforeStart.keys()].sort(), ['dev-issuer.jwks.json', 'dev-issuer.key.pem', 'notes.txt', 'root-cert.pem']);

  const run = await failedStart(stateDir);
  assert.deepEqual(contents(stateDir), beforeStart);
  const rollback = run.lines.find((l) => l.event === 'failed-start-rolled-back');
  assert.deepEqual(rollback?.removedFiles, ['state.json']);
  assert.deepEqual(rollback?.restoredFiles, ['root-cert.pem']);
  assert.deepEqual(rollback?.removedDirectories, []);
});

test('a directory with state is never changed by a failed start, and the next start keeps its root', { timeout: 180_000 }, async () => {
  const stateDir = join(dir, 'with-state');
  const first = await startAndStop(stateDir);
  const root = first.find((l) => l.event === 'root-created')?.fingerprint;
  assert.ok(root);
  const beforeStart = contents(stateDir);

  for (const workers of [1, 2]) {
    const run = await failedStart(stateDir, { workers });
    assert.equal(run.lines.some((l) => l.event?.startsWith('failed-start-roll') === true), false, 'nothing to roll back');
    assert.deepEqual(contents(stateDir), beforeStart, `--workers ${workers}`);
  }

  const again = await startAndStop(stateDir);
  assert.equal(again.some((l) => l.event === 'root-created'), false, 'no new root');
  assert.equal(again.find((l) => l.event === 'ca-started')?.rootFingerprint, root);
});
