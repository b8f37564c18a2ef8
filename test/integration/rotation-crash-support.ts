/**
 * The crash-safety scenario shared by the rotation-crash-*.test.ts files: arm RAMPART_CRASH_AT,
 * drive a real `rampart ca` to that step until it SIGKILLs itself, restart it on the same state
 * directory and prove the state is sound and the rotation runs on to completion.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { strict as assert } from 'node:assert';
import type { CaFlags } from '../../src/config/ca-config.js';
import type { CrashPoint } from '../../src/runtime/ca-runtime.js';
import type { CaState } from '../../src/core/ports.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { adminCall, adminToken, assertConsistentDir, readState, runCli, spawnCa, waitFor } from './rotation-support.js';

type Step = 'prepare' | 'activate' | 'retire';

/** Steps that must succeed before the armed one, in order. */
const BEFORE: Record<Step, Step[]> = { prepare: [], activate: ['prepare'], retire: ['prepare', 'activate'] };

/** Phases (in state order) right after the step at `point` was saved, or before it was. */
const PHASES: Record<string, string[]> = {
  'bootstrap:before-save': [],
  'bootstrap:after-save': ['active'],
  'prepare:before-save': ['active'],
  'prepare:after-save': ['active', 'prepared'],
  'activate:before-save': ['active', 'prepared'],
  'activate:after-save': ['retiring', 'active'],
  'retire:before-save': ['retiring', 'active'],
  'retire:after-save': ['active'],
  'renew-intermediate:before-save': ['active'],
  'renew-intermediate:after-save': ['active'],
};

function bundle(dir: string): string {
  return readFileSync(join(dir, 'root-cert.pem'), 'utf8');
}

/** Runs one admin step and checks it was accepted and changed the bundle by one sequence. */
async function step(ca: TestCa, dir: string, name: Step): Promise<CaState> {
  const before = readState(dir);
  const res = await adminCall(ca.apiUrl, bundle(dir), await adminToken(dir), name, true);
  assert.equal(res.status, 200, `${name}: ${res.text}`);
  const after = assertConsistentDir(dir);
  assert.equal(after.sequence, before.sequence + 1, `${name} grows the sequence by one`);
  return after;
}

/**
 * Arms `point`, crashes a `rampart ca` process there, restarts a CA on the same directory and
 * drives the rotation to completion. `flags` go to both runs. The restart runs in this process
 * (the same startCa the CLI calls): a second child would only add seconds of module loading.
 */
export async function crashAndRecover(point: CrashPoint, flags: CaFlags = {}): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-crash-'));
  const args = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const armed = spawnCa(dir, args, { RAMPART_CRASH_AT: point });
  let ca: TestCa | null = null;
  try {
    const [kind] = point.split(':') as [string];
    if (kind === 'prepare' || kind === 'activate' || kind === 'retire') {
      const { apiUrl } = await armed.started;
      const token = await adminToken(dir);
      for (const earlier of BEFORE[kind as Step]) {
        const res = await adminCall(apiUrl, bundle(dir), token, earlier, true);
        assert.equal(res.status, 200, res.text);
      }
      // The CA dies while answering: the request fails with a reset or hang-up.
      await assert.rejects(adminCall(apiUrl, bundle(dir), token, kind as Step, true));
    }
    const exit = await armed.exited;
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' }, `the CA killed itself at ${point}`);

    const expected = PHASES[point] ?? [];
    const left = existsSync(join(dir, 'state.json')) ? readState(dir) : null;
    assert.deepEqual(left?.roots.map((r) => r.phase) ?? [], expected, `state left by a crash at ${point}`);
    if (kind === 'renew-intermediate') {
      const root = left!.roots[0]!;
      // A renewed intermediate starts later than the root it was first issued with.
      if (point.endsWith('before-save')) assert.equal(left!.roots[0]!.intermediate.notBefore, root.notBefore);
      else assert.ok(root.intermediate.notBefore > root.notBefore, 'the renewed intermediate was saved');
    }

    ca = await startTestCa(flags, { stateDir: dir });
    const restarted = assertConsistentDir(dir);
    assert.deepEqual(restarted.roots.map((r) => r.phase), expected.length === 0 ? ['active'] : expected, 'restart adopts the saved state as is');
    if (left) {
      assert.equal(restarted.roots[0]?.fingerprint, left.roots[0]?.fingerprint, 'the restart kept the roots it found');
      assert.ok(restarted.sequence >= left.sequence);
    }
    // The API serves the same bundle the file holds.
    const served = await adminCall(ca.apiUrl, bundle(dir), await adminToken(dir), 'status');
    assert.equal(served.status, 200, served.text);
    assert.equal((served.body as { sequence: number }).sequence, restarted.sequence);
    if (kind === 'renew-intermediate') {
      // The restarted CA renews the intermediate itself once due (at once, or on a 5 s tick).
      const restartedCa = ca;
      await waitFor(() => restartedCa.logLines.some((l) => l.includes('"event":"rotation-renew-intermediate"')), 'the restarted CA renews the intermediate');
      const renewed = assertConsistentDir(dir);
      assert.ok(renewed.roots[0]!.intermediate.notAfter > left!.roots[0]!.intermediate.notAfter, 'a later intermediate than the one the crash left was saved');
      assert.equal(renewed.sequence, left!.sequence, 'renewal leaves the bundle alone');
    }

    // Continue: finish what was in flight, then one whole rotation, the activation by the CLI.
    const firstGeneration = restarted.roots.find((r) => r.phase === 'active')!.generation;
    let state = restarted;
    if (state.roots.some((r) => r.phase === 'retiring')) state = await step(ca, dir, 'retire');
    if (!state.roots.some((r) => r.phase === 'prepared')) state = await step(ca, dir, 'prepare');
    const token = join(dir, 'admin.token');
    writeFileSync(token, await adminToken(dir), { mode: 0o600 });
    const cli = await runCli(['root', 'activate', '--force', '--json', '--ca-url', ca.apiUrl, '--ca-bundle', join(dir, 'root-cert.pem'), '--token-file', token]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).sequence, state.sequence + 1);
    state = assertConsistentDir(dir);
    state = await step(ca, dir, 'retire');
    assert.deepEqual(state.roots.map((r) => r.phase), ['active']);
    assert.ok(state.roots[0]!.generation > firstGeneration, 'a newer root signs at the end');
  } finally {
    armed.child.kill('SIGKILL');
    await armed.exited;
    await ca?.close({ keepState: true });
    rmSync(dir, { recursive: true, force: true });
  }
}
