import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/core/errors.js';
import { FileLock, LOCK_FILE_NAME, processStartTicks, removeStaleLock } from '../../src/store/file-lock.js';

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rampart-store-lock-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The pid of a process that has already exited (reaped by spawnSync, so it is really gone). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(child.status, 0);
  return child.pid as number;
}

function lockRecord(pid: number, host = hostname()): string {
  return `${JSON.stringify({ pid, hostname: host, startedAt: '2026-01-01T00:00:00.000Z', nonce: 'old' })}\n`;
}

function isLocked(error: unknown): boolean {
  return error instanceof ConfigError && error.code === 'RAMPART_ERR_STATE_LOCKED';
}

test('acquire records pid, hostname and start time; release removes the file', async () => {
  await withTempDir(async (dir) => {
    const lock = await FileLock.acquire(dir);
    const record = JSON.parse(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'));
    assert.equal(record.pid, process.pid);
    assert.equal(record.hostname, hostname());
    assert.ok(!Number.isNaN(Date.parse(record.startedAt)));
    await lock.verify();
    await lock.release();
    await lock.release();
    assert.deepEqual(await readdir(dir), []);
  });
});

test('a second acquire in the same process is refused, naming the holder', async () => {
  await withTempDir(async (dir) => {
    const lock = await FileLock.acquire(dir);
    try {
      await assert.rejects(FileLock.acquire(dir), (error: unknown) => {
        assert.ok(isLocked(error));
        assert.match((error as Error).message, new RegExp(`in use by pid ${process.pid}; stop that CA or use another --state-dir`));
        return true;
      });
    } finally {
      await lock.release();
    }
    await (await FileLock.acquire(dir)).release();
  });
});

test('a lock left by a dead pid on this host is taken over', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, LOCK_FILE_NAME), lockRecord(deadPid()));
    const lock = await FileLock.acquire(dir);
    const record = JSON.parse(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'));
    assert.equal(record.pid, process.pid);
    await lock.release();
    assert.deepEqual(await readdir(dir), [], 'no aside or temp files remain');
  });
});

test('a lock naming this pid but not held by this process is a previous incarnation', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, LOCK_FILE_NAME), lockRecord(process.pid));
    const lock = await FileLock.acquire(dir);
    await lock.release();
  });
});

test('a lock held by a live process is refused', async () => {
  await withTempDir(async (dir) => {
    // pid 1 always exists; kill(1, 0) answers EPERM for non-root, which must count as alive.
    await writeFile(join(dir, LOCK_FILE_NAME), lockRecord(1));
    await assert.rejects(FileLock.acquire(dir), (error: unknown) => isLocked(error) && /pid 1;/.test((error as Error).message));
  });
});

test('a live pid that is no longer the holder is taken over: another boot, or a process started at another moment (outside QA: a reused pid after a power cut blocked every restart)', { skip: process.platform !== 'linux' }, async () => {
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  const pidNamespace = readlinkSync('/proc/self/ns/pid');
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const pid = sleeper.pid as number;
    const ticks = processStartTicks(pid);
    assert.ok(ticks !== null);
    const record = (fields: Record<string, string>): string => `${JSON.stringify({ pid, hostname: hostname(), startedAt: '2026-01-01T00:00:00.000Z', nonce: 'old', pidNamespace, ...fields })}\n`;
    await withTempDir(async (dir) => {
      // The holder itself: same boot, same start time.
      await writeFile(join(dir, LOCK_FILE_NAME), record({ bootId, startTicks: ticks }));
      await assert.rejects(FileLock.acquire(dir), (error: unknown) => isLocked(error) && new RegExp(`pid ${pid};`).test((error as Error).message));
      // The pid now names a process that started at another moment than the holder.
      await writeFile(join(dir, LOCK_FILE_NAME), record({ bootId, startTicks: String(Number(ticks) - 1) }));
      await (await FileLock.acquire(dir)).release();
      // Written in an earlier boot.
      await writeFile(join(dir, LOCK_FILE_NAME), record({ bootId: '00000000-0000-0000-0000-000000000000', startTicks: ticks }));
      await (await FileLock.acquire(dir)).release();
      // A lock from before these fields: its live pid still counts as the holder.
      await writeFile(join(dir, LOCK_FILE_NAME), `${JSON.stringify({ pid, hostname: hostname(), startedAt: 'x', nonce: 'old' })}\n`);
      await assert.rejects(FileLock.acquire(dir), isLocked);
      // A holder in another pid namespace (a CA in a container, its pid 1 is not ours): its pid says
      // nothing here, so the lock stands (outside QA: a live containerized CA's lock was taken over).
      await writeFile(join(dir, LOCK_FILE_NAME), record({ bootId, startTicks: String(Number(ticks) - 1), pidNamespace: 'pid:[1]' }));
      await assert.rejects(FileLock.acquire(dir), isLocked);
    });
    // And a lock this process takes records both.
    await withTempDir(async (dir) => {
      const lock = await FileLock.acquire(dir);
      const own = JSON.parse(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'));
      assert.deepEqual([own.bootId, own.startTicks, own.pidNamespace], [bootId, processStartTicks(process.pid), pidNamespace]);
      await lock.release();
    });
  } finally {
    sleeper.kill('SIGKILL');
  }
});

test('a lock from another host is refused with advice', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, LOCK_FILE_NAME), lockRecord(deadPid(), 'some-other-host'));
    await assert.rejects(FileLock.acquire(dir), (error: unknown) => isLocked(error) && /on host some-other-host/.test((error as Error).message));
  });
});

test('an unreadable lock file is refused, not silently removed', async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, LOCK_FILE_NAME), 'garbage');
    await assert.rejects(FileLock.acquire(dir), (error: unknown) => isLocked(error) && /unreadable lock file/.test((error as Error).message));
    assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), 'garbage');
  });
});

test('verify fails once the lock is replaced, and release leaves the new holder alone', async () => {
  await withTempDir(async (dir) => {
    const lock = await FileLock.acquire(dir);
    const other = lockRecord(1);
    await writeFile(join(dir, LOCK_FILE_NAME), other);
    await assert.rejects(lock.verify(), (error: unknown) => isLocked(error) && /held by pid 1/.test((error as Error).message));
    await lock.release();
    assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), other);
  });
});

test('a missing directory is a coded config error', async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(FileLock.acquire(join(dir, 'missing')), { code: 'RAMPART_ERR_CONFIG_INVALID' });
  });
});

test('a racer holding an outdated view of the stale lock cannot remove the new holder', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, LOCK_FILE_NAME);
    const stale = lockRecord(deadPid());
    await writeFile(path, stale);
    // Racer B read the stale record; racer A then took the lock over before B acted on it.
    const winner = await FileLock.acquire(dir);
    const winnerRaw = await readFile(path, 'utf8');
    assert.equal(await removeStaleLock(path, stale), false);
    assert.equal(await readFile(path, 'utf8'), winnerRaw);
    await winner.verify();
    await assert.rejects(FileLock.acquire(dir), (error: unknown) => isLocked(error));
    await winner.release();
    assert.deepEqual(await readdir(dir), []);
  });
});

test('a starter whose fresh lock is displaced before it confirms does not win', async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, LOCK_FILE_NAME);
    const acquiring = FileLock.acquire(dir);
    // As soon as the starter's lock appears, another live holder takes its place, as when a racer
    // moves the fresh lock aside and a third one creates its own in the gap.
    for (let i = 0; i < 2000; i++) {
      const now = await readFile(path, 'utf8').catch(() => '');
      if (now.includes(`"pid":${process.pid}`)) break;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await writeFile(path, lockRecord(process.ppid));
    await assert.rejects(acquiring, (error: unknown) => isLocked(error) && new RegExp(`in use by pid ${process.ppid}`).test((error as Error).message));
    assert.equal(await readFile(path, 'utf8'), lockRecord(process.ppid));
  });
});
