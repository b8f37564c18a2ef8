/**
 * Crash-safe file replacement: readers and a restarted process see either the old bytes or the
 * new bytes of a file, never a torn mix, and never a moment where the file is more readable
 * than `mode` allows.
 */
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Options for {@link writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** Permission bits of the final file, e.g. 0o600 for keys and state, 0o644 for bundles. */
  readonly mode: number;
}

const TEMP_SUFFIX = '.tmp';

/**
 * The temp-file name prefix used while replacing `fileName`. Exposed so a store can sweep
 * leftovers of a writer that was killed between create and rename.
 */
export function atomicTempPrefix(fileName: string): string {
  return `.${fileName}.`;
}

/** True when `entryName` is a leftover temp file of an atomic write of `fileName`. */
export function isAtomicTempFile(entryName: string, fileName: string): boolean {
  return entryName.startsWith(atomicTempPrefix(fileName)) && entryName.endsWith(TEMP_SUFFIX);
}

/**
 * Writes `data` to `path` atomically: temp file in the same directory (same filesystem, so the
 * rename is atomic), fsync of the data, rename over the target, fsync of the directory so the
 * rename itself survives a power cut. The temp file is created with `mode` already applied, so
 * key material is never briefly world-readable. Errors are the raw Node.js `fs` errors (with
 * `code`); callers map them to their own coded errors.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<void> {
  const temp = await writeTempFile(path, data, options.mode);
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await fsyncDirectory(dirname(path));
}

/**
 * Creates `path` holding `data` only where no file is, the same crash-safe way (a fully written
 * temp file linked into place); false when a file was already there, which is left alone.
 */
export async function createFileExclusive(path: string, data: string | Uint8Array, options: AtomicWriteOptions): Promise<boolean> {
  const temp = await writeTempFile(path, data, options.mode);
  try {
    await link(temp, path);
  } catch (error) {
    if (isFsError(error, 'EEXIST')) return false;
    throw error;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  await fsyncDirectory(dirname(path));
  return true;
}

/** A fully written, fsynced temp file beside `path`, named so a store can sweep it after a crash. */
async function writeTempFile(path: string, data: string | Uint8Array, mode: number): Promise<string> {
  const temp = join(dirname(path), `${atomicTempPrefix(basename(path))}${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  // 'wx' = O_CREAT|O_EXCL: never follow or reuse a file someone planted at the temp name.
  const handle = await open(temp, 'wx', mode);
  try {
    // open() applies the umask, which can only narrow the mode; chmod makes it exact (e.g. a
    // 0644 bundle under umask 077) while the file is still only reachable by its temp name.
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  return temp;
}

/**
 * Flushes a directory's entries (creations, renames, unlinks) to disk. Filesystems that cannot
 * fsync a directory are tolerated: there is nothing more a process can do on them.
 */
export async function fsyncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
  } catch (error) {
    if (isFsError(error, 'EISDIR', 'EPERM', 'EACCES')) return;
    throw error;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!isFsError(error, 'EINVAL', 'ENOTSUP', 'EPERM', 'EBADF')) throw error;
  } finally {
    await handle.close();
  }
}

/** True when `error` is a Node.js fs error with one of `codes` (any code when none are given). */
export function isFsError(error: unknown, ...codes: string[]): error is NodeJS.ErrnoException {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' && (codes.length === 0 || codes.includes(code));
}
