/**
 * `mkdir -p` that always ends. Node 20's `mkdir(path, { recursive: true })` loops forever, at full
 * CPU and deaf to signal handlers when synchronous, when a directory's parent exists but refuses
 * the new entry with ENOENT (procfs and sysfs do: `--state-dir /proc/x` hung the CA). Here each
 * missing directory is created once, top-down, and the first real error is thrown as it is.
 */
import { mkdirSync, statSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

function isErrno(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === code;
}

/** The directories from the first missing ancestor of `dir` down to `dir`, found with `exists`. */
function missingChain(dir: string, exists: (path: string) => boolean): string[] {
  const missing: string[] = [];
  for (let current = resolve(dir); !exists(current); current = dirname(current)) {
    missing.unshift(current);
    if (dirname(current) === current) break;
  }
  return missing;
}

function existsNow(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return false;
    throw error;
  }
}

/** Creates `dir` and any missing parents (each with `mode`); an existing directory is fine. */
export async function makeDirectories(dir: string, mode?: number): Promise<void> {
  const missing: string[] = [];
  for (let current = resolve(dir); ; current = dirname(current)) {
    try {
      await stat(current);
      break;
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
    }
    missing.unshift(current);
    if (dirname(current) === current) break;
  }
  for (const path of missing) {
    try {
      await mkdir(path, mode === undefined ? {} : { mode });
    } catch (error) {
      // Another process may have made it meanwhile.
      if (!isErrno(error, 'EEXIST')) throw error;
    }
  }
}

/** Synchronous {@link makeDirectories}, for start-up paths that are synchronous anyway. */
export function makeDirectoriesSync(dir: string, mode?: number): void {
  for (const path of missingChain(dir, existsNow)) {
    try {
      mkdirSync(path, mode === undefined ? {} : { mode });
    } catch (error) {
      if (!isErrno(error, 'EEXIST')) throw error;
    }
  }
}
