/**
 * `mkdir -p` that always ends. Node 20's `mkdir(path, { recursive: true })` loops forever, at full
 * CPU and deaf to signal handlers when synchronous, when a directory's parent exists but refuses
 * the new entry with ENOENT (procfs and sysfs do: `--state-dir /proc/x` hung the CA). Here each
 * missing directory is created once, top-down, and the first real error is thrown as it is.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isFsError } from './atomic-file.js';

/** The directories from the first missing ancestor of `dir` down to `dir`. */
function missingChain(dir: string): string[] {
  const missing: string[] = [];
  for (let current = resolve(dir); !existsNow(current); current = dirname(current)) {
    missing.unshift(current);
    if (dirname(current) === current) break;
  }
  return missing;
}

// Synchronous on purpose: a few stats of paths that nearly always exist, at start-up or once per
// certificate write; the creating itself is what may block.
function existsNow(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if (isFsError(error, 'ENOENT')) return false;
    throw error;
  }
}

/**
 * Creates `dir` and any missing parents (each with `mode`); an existing directory is fine. Returns
 * the directories this call created, outermost first, so a failed start can remove them again.
 */
export async function makeDirectories(dir: string, mode?: number): Promise<string[]> {
  const created: string[] = [];
  for (const path of missingChain(dir)) {
    try {
      await mkdir(path, mode === undefined ? {} : { mode });
      created.push(path);
    } catch (error) {
      // Another process may have made it meanwhile.
      if (!isFsError(error, 'EEXIST')) throw error;
    }
  }
  return created;
}

/** Synchronous {@link makeDirectories}, for start-up paths that are synchronous anyway. */
export function makeDirectoriesSync(dir: string, mode?: number): void {
  for (const path of missingChain(dir)) {
    try {
      mkdirSync(path, mode === undefined ? {} : { mode });
    } catch (error) {
      if (!isFsError(error, 'EEXIST')) throw error;
    }
  }
}
