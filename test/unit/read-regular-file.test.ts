/** readRegularFile: the limit is exact, and nothing but a regular file is read. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileTooLarge, NotRegularFile, readRegularFile } from '../../src/files/read-regular-file.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rampart-read-regular-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('a file of exactly the limit is read whole; one byte more is refused', async () => {
  const limit = 10_000;
  const exact = join(dir, 'exact');
  const over = join(dir, 'over');
  const empty = join(dir, 'empty');
  await writeFile(exact, 'é'.repeat(limit / 2));
  await writeFile(over, 'x'.repeat(limit + 1));
  await writeFile(empty, '');
  assert.equal(await readRegularFile(exact, limit), 'é'.repeat(limit / 2));
  await assert.rejects(readRegularFile(over, limit), (err: unknown) => err instanceof FileTooLarge && err.message === `is larger than ${limit} bytes`);
  assert.equal(await readRegularFile(empty, limit), '');
});

test('a FIFO, a character device and a directory are refused by kind; a missing file keeps its errno', async () => {
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  for (const [path, kind] of [[fifo, 'a FIFO'], ['/dev/zero', 'a character device'], [dir, 'a directory']] as const) {
    await assert.rejects(readRegularFile(path, 1024), (err: unknown) => err instanceof NotRegularFile && err.kind === kind, path);
  }
  await assert.rejects(readRegularFile(join(dir, 'absent'), 1024), { code: 'ENOENT' });
});
