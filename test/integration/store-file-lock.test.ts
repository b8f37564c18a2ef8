import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const lockModule = join(repoRoot, 'src/store/file-lock.ts');

// Each racer reports "ready", waits for "go" so all race at once, reports its result, then
// holds whatever it won until its stdin closes.
const RACER = `
import { createInterface } from 'node:readline';
const { FileLock } = await import(${JSON.stringify(lockModule)});
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
console.log('ready');
await lines.next();
let lock = null;
try { lock = await FileLock.acquire(process.argv[1]); console.log('won'); }
catch (error) { console.log('lost ' + error.code); }
await lines.next();
await lock?.release();
`;

interface Racer {
  child: ChildProcessWithoutNullStreams;
  next: () => Promise<string>;
}

function startRacer(dir: string): Racer {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', RACER, dir], { cwd: repoRoot });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return { child, next: async () => String((await lines.next()).value) };
}

test('racing starters over a stale lock: exactly one wins', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rampart-store-lockrace-'));
  const racers: Racer[] = [];
  try {
    const dead = spawnSync(process.execPath, ['-e', '']).pid as number;
    for (let round = 0; round < 2; round++) {
      await writeFile(join(dir, 'ca.lock'), JSON.stringify({ pid: dead, hostname: hostname(), startedAt: 'x', nonce: `stale${round}` }));
      const batch = [0, 1, 2, 3].map(() => startRacer(dir));
      racers.push(...batch);
      for (const r of batch) assert.equal(await r.next(), 'ready');
      for (const r of batch) r.child.stdin.write('go\n');
      const results = await Promise.all(batch.map((r) => r.next()));
      assert.equal(results.filter((r) => r === 'won').length, 1, `results: ${results.join(', ')}`);
      assert.equal(results.filter((r) => r === 'lost RAMPART_ERR_STATE_LOCKED').length, 3, `results: ${results.join(', ')}`);
      const winner = batch[results.indexOf('won')]!;
      assert.equal(JSON.parse(await readFile(join(dir, 'ca.lock'), 'utf8')).pid, winner.child.pid);
      for (const r of batch) r.child.stdin.end();
      await Promise.all(batch.map((r) => (r.child.exitCode === null ? once(r.child, 'exit') : null)));
      assert.deepEqual(await readdir(dir), [], 'winner released; no aside or temp files left');
    }
  } finally {
    for (const r of racers) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('a lock whose holder is a zombie (killed, not yet reaped) is taken over', { skip: process.platform !== 'linux' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rampart-store-zombie-'));
  // The background sleep exits after its shell has become `sleep 10`, which never reaps it: a
  // zombie for the rest of those 10 s. (A child that exits before the exec may be reaped by sh.)
  const parent = spawn('sh', ['-c', 'sleep 0.5 & echo $!; exec sleep 10'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const [line] = (await once(createInterface({ input: parent.stdout }), 'line')) as [string];
    const zombie = Number(line);
    // It may take a moment longer to exit on a busy machine.
    const processState = async (): Promise<string> => {
      const stat = await readFile(`/proc/${zombie}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    };
    for (let i = 0; i < 100 && (await processState()) !== 'Z'; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await processState(), 'Z', 'the holder is a zombie');
    await writeFile(join(dir, 'ca.lock'), JSON.stringify({ pid: zombie, hostname: hostname(), startedAt: 'x', nonce: 'zombie' }));
    const { FileLock } = await import('../../src/store/file-lock.js');
    const lock = await FileLock.acquire(dir);
    assert.equal(JSON.parse(await readFile(join(dir, 'ca.lock'), 'utf8')).pid, process.pid);
    await lock.release();
  } finally {
    parent.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
