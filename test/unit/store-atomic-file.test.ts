import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAtomicTempFile, writeFileAtomic } from '../../src/store/atomic-file.js';

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rampart-store-atomic-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('writes the bytes with the requested mode and leaves no temp file', async () => {
  await withTempDir(async (dir) => {
    const target = join(dir, 'state.json');
    await writeFileAtomic(target, '{"a":1}\n', { mode: 0o600 });
    assert.equal(await readFile(target, 'utf8'), '{"a":1}\n');
    assert.equal((await stat(target)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['state.json']);
  });
});

test('replaces an existing file, narrowing its mode', async () => {
  await withTempDir(async (dir) => {
    const target = join(dir, 'key.pem');
    await writeFile(target, 'old', { mode: 0o644 });
    await writeFileAtomic(target, Buffer.from('new'), { mode: 0o600 });
    assert.equal(await readFile(target, 'utf8'), 'new');
    assert.equal((await stat(target)).mode & 0o777, 0o600);
  });
});

test('applies the exact mode even under a restrictive umask', async () => {
  await withTempDir(async (dir) => {
    const target = join(dir, 'root-cert.pem');
    const previous = process.umask(0o077);
    try {
      await writeFileAtomic(target, 'bundle', { mode: 0o644 });
    } finally {
      process.umask(previous);
    }
    assert.equal((await stat(target)).mode & 0o777, 0o644);
  });
});

test('a failed rename leaves the target untouched and removes the temp file', async () => {
  await withTempDir(async (dir) => {
    // A non-empty directory at the target name makes rename(2) fail after the temp was written.
    const target = join(dir, 'state.json');
    await mkdir(target);
    await writeFile(join(target, 'inside'), 'x');
    await assert.rejects(writeFileAtomic(target, 'data', { mode: 0o600 }), (error: NodeJS.ErrnoException) => typeof error.code === 'string');
    assert.deepEqual((await readdir(dir)).sort(), ['state.json']);
    assert.ok((await stat(target)).isDirectory());
  });
});

test('a missing directory is reported as ENOENT', async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(writeFileAtomic(join(dir, 'nope', 'state.json'), 'x', { mode: 0o600 }), { code: 'ENOENT' });
  });
});

test('isAtomicTempFile recognises only temp files of the given target', () => {
  assert.equal(isAtomicTempFile('.state.json.123.abcdef.tmp', 'state.json'), true);
  assert.equal(isAtomicTempFile('state.json', 'state.json'), false);
  assert.equal(isAtomicTempFile('.root-cert.pem.1.a.tmp', 'state.json'), false);
});
