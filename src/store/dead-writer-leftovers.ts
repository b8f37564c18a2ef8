/**
 * Temp files named `<file>.<pid>.<hex>.tmp` that a writer killed between create and link or
 * rename left behind. The dev issuer's are copies of its private key, so they are removed as soon
 * as the process that made them is gone; those of a live process are its writes in progress.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { processIsAlive } from './file-lock.js';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Removes the leftovers of dead writers of `fileNames` in `dir`; returns the names removed. */
export async function removeDeadWriterLeftovers(dir: string, fileNames: readonly string[]): Promise<string[]> {
  const pattern = new RegExp(`^(?:${fileNames.map(escapeRegExp).join('|')})\\.(\\d+)\\.[0-9a-f]+\\.tmp$`);
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processIsAlive(pid)) continue;
    try {
      await unlink(join(dir, name));
      removed.push(name);
    } catch {
      // Another process swept it first.
    }
  }
  return removed;
}
