/**
 * A SIGTERM or SIGINT that reaches `rampart ca` while it starts ends it cleanly (exit 0, not killed
 * by the signal's default action between writes, no error reported). Before the API listens the
 * start is cancelled: everything it started is stopped, every signing worker included, and what it
 * created is rolled back as for a failed start. Once the API listens the CA stops as from running
 * and keeps its state, which it may have served. Seen under load: a signal sent right after the
 * "ca-started" line arrived before the handler was installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, spawnCli } from '../helpers/cli.js';
import { eventually } from '../helpers/poll.js';
import { validateState } from '../../src/store/state-codec.js';

test('SIGTERM during start-up (as the first root is created) ends in a clean exit 0: the start undone, or the CA stopped with a valid state', { timeout: 90_000 }, async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-startup-signal-'));
  const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0']);
  try {
    let out = '';
    let err = '';
    let signalled = false;
    ca.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    ca.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      if (!signalled && out.includes('"event":"root-created"')) {
        signalled = true;
        ca.kill('SIGTERM');
      }
    });
    const [code, signal] = (await once(ca, 'exit')) as [number | null, NodeJS.Signals | null];
    assert.ok(signalled, 'the CA logged root-created');
    assert.equal(signal, null, 'not killed by the signal');
    assert.equal(code, 0, err);
    assert.doesNotMatch(err, /RAMPART_ERR_/);
    // Which of the two depends on how far the start got when the signal was handled.
    if (out.includes('"event":"ca-start-cancelled"')) {
      assert.match(err, /^rampart ca: start cancelled by SIGTERM before the CA served; nothing is left running$/m);
      assert.deepEqual(readdirSync(stateDir), [], 'the state directory is as the start found it');
    } else {
      assert.match(out, /"msg":"shutting down"/);
      assert.equal(validateState(JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'))).roots.length, 1);
    }
  } finally {
    if (ca.exitCode === null && ca.signalCode === null) ca.kill('SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  }
});

/** The pids of `pid`'s child processes (its workers), from procfs. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// Holds each signing worker before its code runs (see the fixture), so the signal certainly comes
// while the CA is starting, however loaded the machine.
const HOLD_WORKERS = pathToFileURL(join(REPO_ROOT, 'test/fixtures/hold-cluster-workers.mjs')).href;

// Kubernetes stops a container with SIGTERM to its first process; a terminal's Ctrl-C and
// systemd's stop signal the whole process group, workers included.
const STOPS = [
  { name: 'SIGTERM to the primary', signal: 'SIGTERM', group: false },
  { name: 'SIGTERM to the whole process group', signal: 'SIGTERM', group: true },
  { name: 'SIGINT to the whole process group', signal: 'SIGINT', group: true },
] as const;

for (const stop of STOPS) {
  test(`${stop.name} while --workers 4 start: cancelled, not an error; exit 0, no worker left, state rolled back`, { timeout: 120_000 }, async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'rampart-startup-signal-cluster-'));
    const env = { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${HOLD_WORKERS}`.trim() };
    const ca = spawnCli(['ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--workers', '4', '--log-level', 'debug'], { env, ownProcessGroup: true });
    const pid = ca.pid as number;
    let out = '';
    let err = '';
    ca.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    ca.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const exited = once(ca, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    try {
      // The primary logs forking-workers just before it forks: wait until a worker exists, so that
      // a signal to the group reaches it too.
      await eventually('a forked worker', () => out.includes('"event":"forking-workers"') && childrenOf(pid).length > 0, 90_000);
      if (stop.group) process.kill(-pid, stop.signal);
      else ca.kill(stop.signal);
      // Liveness, not timing: a cancelled start ends in a second or two; before, a SIGTERM to the
      // primary waited for a worker to serve, which a held worker never does.
      const stillRunning = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 60_000).unref());
      const outcome = await Promise.race([exited, stillRunning]);
      assert.notEqual(outcome, 'still running', `the CA did not stop on ${stop.signal}; stdout:\n${out.slice(-2000)}`);
      const [code, killedBy] = outcome as [number | null, NodeJS.Signals | null];
      assert.equal(killedBy, null, 'ended by itself, not by the default signal action');
      assert.equal(code, 0, err);
      assert.doesNotMatch(err, /RAMPART_ERR_/, 'no error is reported');
      assert.match(err, new RegExp(`^rampart ca: start cancelled by ${stop.signal} before the CA served; nothing is left running$`, 'm'));
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const cancelled = lines.find((l) => l['event'] === 'ca-start-cancelled');
      assert.equal(cancelled?.['signal'], stop.signal);
      assert.equal(cancelled?.['msg'], `start cancelled by ${stop.signal} before the CA served; nothing is left running`);
      assert.ok(!lines.some((l) => l['event'] === 'ca-started'), 'never reported up');
      const workers = lines.filter((l) => l['event'] === 'worker-forked').map((l) => Number(l['workerPid']));
      // The first batch is one worker per core (up to the 4 asked for); the rest never start.
      assert.equal(workers.length, Math.min(4, availableParallelism()), 'the others are not started once the start is cancelled');
      for (const worker of workers) {
        assert.throws(() => process.kill(worker, 0), { code: 'ESRCH' }, `worker ${worker} is gone`);
      }
      assert.ok(lines.some((l) => l['event'] === 'failed-start-rolled-back'), 'the start is rolled back');
      assert.deepEqual(readdirSync(stateDir), [], 'the state directory is as the start found it');
    } finally {
      // The whole group: a worker left behind must not outlive the test.
      if (ca.exitCode === null && ca.signalCode === null) process.kill(-pid, 'SIGKILL');
      else {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Nothing of the group is left, as it should be.
        }
      }
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
}
