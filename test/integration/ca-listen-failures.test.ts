/**
 * A `rampart ca` whose API or monitoring port is taken stops with RAMPART_ERR_LISTEN_FAILED and
 * exit status 2, leaving nothing listening and its state lock free: one process or a cluster.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLines, runCli, spawnCli } from '../helpers/cli.js';
import { holdPort } from '../helpers/ports.js';

let releaseHeld: () => void;
let heldPort: number;
let dir: string;

before(async () => {
  ({ port: heldPort, release: releaseHeld } = await holdPort());
  dir = mkdtempSync(join(tmpdir(), 'rampart-listen-'));
});

after(async () => {
  releaseHeld();
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Runs `rampart ca ARGS`, which must exit by itself within the test's time; returns what it said. */
async function caExits(stateDir: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawnCli(['ca', '--state-dir', stateDir, ...args]);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout?.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

const cases = [
  { name: 'monitoring port taken, one process', flag: '--monitoring-listen', workers: '1' },
  { name: 'API port taken, one process', flag: '--listen', workers: '1' },
  { name: 'monitoring port taken, --workers 2', flag: '--monitoring-listen', workers: '2' },
  { name: 'API port taken, --workers 2', flag: '--listen', workers: '2' },
] as const;

for (const c of cases) {
  test(`${c.name}: exit 2, RAMPART_ERR_LISTEN_FAILED naming ${c.flag}, nothing left listening, lock free`, { timeout: 120_000 }, async () => {
    const stateDir = join(dir, `${c.flag.slice(2)}-${c.workers}`);
    const other = await freePort();
    const api = c.flag === '--listen' ? heldPort : other;
    const monitoring = c.flag === '--listen' ? other : heldPort;
    const run = await caExits(stateDir, ['--listen', `127.0.0.1:${api}`, '--monitoring-listen', `127.0.0.1:${monitoring}`, '--workers', c.workers]);
    assert.equal(run.code, 2, run.stderr);
    const lines = run.stderr.trim().split('\n').filter((l) => l.startsWith('rampart ca:'));
    assert.equal(lines.length, 1, `one error line: ${run.stderr}`);
    assert.match(lines[0] ?? '', new RegExp(`^rampart ca: ${c.flag} 127\\.0\\.0\\.1:${heldPort}: cannot listen: the address is already in use.* \\[RAMPART_ERR_LISTEN_FAILED\\]$`));
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await accepts(other), false, 'the other listener was closed');

    // The lock and state were released: the same state dir starts and stops cleanly.
    const again = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
    let out = '';
    again.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    again.stderr?.resume();
    const up = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 60_000);
      again.stdout?.on('data', () => {
        if (out.includes('"event":"ca-started"')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      again.once('exit', () => resolve(false));
    });
    assert.ok(up, `the CA starts again on the same state dir: ${out.slice(-400)}`);
    again.kill('SIGTERM');
    const [code] = (await once(again, 'exit')) as [number | null];
    assert.equal(code, 0);
  });
}

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('API port taken, --workers cores+6: the clash is reported from the first batch (one worker per core), the others are never started, none is left', { timeout: 120_000 }, async () => {
  const stateDir = join(dir, 'api-8');
  const { code, stdout, stderr } = await runCli(['ca', '--state-dir', stateDir, '--listen', `127.0.0.1:${heldPort}`, '--monitoring-listen', '127.0.0.1:0', '--workers', String(availableParallelism() + 6), '--log-level', 'debug'], { timeoutMs: 90_000 });
  assert.equal(code, 2, stderr);
  assert.match(stderr, new RegExp(`^rampart ca: --listen 127\\.0\\.0\\.1:${heldPort}: cannot listen: the address is already in use.* \\[RAMPART_ERR_LISTEN_FAILED\\]$`, 'm'));
  const lines = jsonLines(stdout);
  // What the primary says it starts, batch by batch: before, all eight at once.
  const started = lines.filter((l) => l['event'] === 'forking-workers').reduce((n, l) => n + Number(l['workers']), 0);
  // One per core boots before the clash is known, not all those asked for.
  const firstBatch = availableParallelism();
  assert.equal(started, firstBatch, `workers started: ${started}`);
  const forked = lines.filter((l) => l['event'] === 'worker-forked').map((l) => Number(l['workerPid']));
  assert.equal(forked.length, firstBatch, `worker-forked lines: ${JSON.stringify(forked)}`);
  for (const pid of forked) assert.equal(alive(pid), false, `worker ${pid} is gone`);
  assert.ok(lines.some((l) => l['event'] === 'failed-start-rolled-back'), 'the state this start created is rolled back');
  assert.equal(existsSync(stateDir), false, 'the state directory this start created is removed again');
});
