import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirectories, makeDirectoriesSync } from '../../src/store/make-directories.js';

const variants = [
  { name: 'makeDirectories', make: (dir: string, mode?: number) => makeDirectories(dir, mode) },
  { name: 'makeDirectoriesSync', make: async (dir: string, mode?: number) => makeDirectoriesSync(dir, mode) },
];

for (const { name, make } of variants) {
  test(`${name} creates missing parents with the mode, accepts an existing directory, and refuses a file on the path`, async () => {
    const base = mkdtempSync(join(tmpdir(), 'rampart-mkdirs-'));
    try {
      const deep = join(base, 'a', 'b', 'c');
      await make(deep, 0o700);
      for (const d of [join(base, 'a'), join(base, 'a', 'b'), deep]) {
        assert.ok(statSync(d).isDirectory());
        assert.equal(statSync(d).mode & 0o777, 0o700, d);
      }
      await make(deep, 0o700);
      await make(`${deep}/`, 0o700);
      const file = join(base, 'file');
      writeFileSync(file, 'x');
      await assert.rejects(async () => make(join(file, 'below')), (err: NodeJS.ErrnoException) => err.code === 'ENOTDIR');
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  test(`${name} fails with ENOENT where a parent exists but refuses new entries (procfs), instead of looping`, async () => {
    await assert.rejects(async () => make('/proc/rampart-nope/below', 0o700), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  });
}
