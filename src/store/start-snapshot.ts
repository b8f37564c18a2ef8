/**
 * What a state directory held when a CA start opened it, so that a start which then fails can put
 * the directory back as it found it. Without this a failed first start (its port taken, say) left
 * a freshly generated root and intermediate behind, and the next start silently signed under a
 * root that no admin had ever seen served.
 *
 * Only the named files are judged: the CA's own, never whatever else someone keeps beside them.
 */
import { readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isFsError, writeFileAtomic } from './atomic-file.js';

/** One file as the start found it: its bytes and permission bits, or null when it was absent. */
type Found = { readonly bytes: Buffer; readonly mode: number } | null;

/** What putting a directory back did. Names only: never file contents (some are private keys). */
export interface RollbackReport {
  /** Files the start created, now removed. */
  readonly removed: readonly string[];
  /** Files that existed and were rewritten by the start, now holding their old bytes again. */
  readonly restored: readonly string[];
  /** Directories the start created, now removed. */
  readonly removedDirectories: readonly string[];
  /** What could not be put back, each as `name: reason`. */
  readonly failed: readonly string[];
}

async function readFound(path: string): Promise<Found> {
  try {
    const [bytes, info] = await Promise.all([readFile(path), stat(path)]);
    return { bytes, mode: info.mode & 0o777 };
  } catch (error) {
    if (isFsError(error, 'ENOENT')) return null;
    throw error;
  }
}

function reason(error: unknown): string {
  return isFsError(error) ? (error.code ?? 'error') : 'error';
}

export class StartSnapshot {
  private constructor(
    private readonly dir: string,
    private readonly found: ReadonlyMap<string, Found>,
  ) {}

  /** Records `names` in `dir` as they are now. Take it under the directory's lock. */
  static async take(dir: string, names: readonly string[]): Promise<StartSnapshot> {
    const found = new Map<string, Found>();
    for (const name of new Set(names)) found.set(name, await readFound(join(dir, name)));
    return new StartSnapshot(dir, found);
  }

  /**
   * Removes the named files that appeared since the snapshot and writes back those that changed,
   * with their old mode. Goes on past a failure, so as much as possible is put back; the caller
   * must still hold the directory's lock.
   */
  async restoreFiles(): Promise<Pick<RollbackReport, 'removed' | 'restored' | 'failed'>> {
    const removed: string[] = [];
    const restored: string[] = [];
    const failed: string[] = [];
    for (const [name, before] of this.found) {
      const path = join(this.dir, name);
      try {
        const now = await readFound(path);
        if (now === null) continue;
        if (before === null) {
          await unlink(path);
          removed.push(name);
        } else if (!now.bytes.equals(before.bytes)) {
          await writeFileAtomic(path, before.bytes, { mode: before.mode });
          restored.push(name);
        }
      } catch (error) {
        failed.push(`${name}: ${reason(error)}`);
      }
    }
    return { removed, restored, failed };
  }
}

/**
 * Removes directories a start created (`created` outermost first, as makeDirectories returns
 * them), innermost first. rmdir removes only empty directories, so anything someone else put there
 * meanwhile, a new CA's lock included, keeps its directory; that is not a failure.
 */
export async function removeCreatedDirectories(created: readonly string[]): Promise<Pick<RollbackReport, 'removedDirectories' | 'failed'>> {
  const removedDirectories: string[] = [];
  const failed: string[] = [];
  for (const dir of [...created].reverse()) {
    try {
      await rmdir(dir);
      removedDirectories.push(dir);
    } catch (error) {
      if (isFsError(error, 'ENOENT')) continue;
      // Not empty: it holds something that is not this start's to remove, so it stays, as do its parents.
      if (!isFsError(error, 'ENOTEMPTY', 'EEXIST')) failed.push(`${dir}: ${reason(error)}`);
      break;
    }
  }
  return { removedDirectories, failed };
}
