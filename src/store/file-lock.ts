/**
 * An exclusive, cross-process lock on a CA state directory (`<dir>/ca.lock`), so two CA
 * processes never read-modify-write the same state. Node has no flock(2), so the lock is a file
 * created atomically (hard link of a fully written temp file, which fails with EEXIST exactly
 * like O_EXCL but never exposes a half-written owner record) and holding the owner's pid and
 * host, and on Linux the boot and start time that tell it from a later process given the same
 * pid. A lock left by a dead process on this host is taken over.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../core/errors.js';
import { fsyncDirectory, isFsError } from './atomic-file.js';
import { makeDirectories } from './make-directories.js';

/** Name of the lock file inside the state directory. */
export const LOCK_FILE_NAME = 'ca.lock';

/** What a lock file records about its holder. */
export interface LockOwner {
  readonly pid: number;
  readonly hostname: string;
  /** ISO-8601 time the holder took the lock. */
  readonly startedAt: string;
  /** Random per-acquisition token, so a holder can tell its own lock from a successor's. */
  readonly nonce: string;
  /** Linux: the boot the holder ran in (/proc/sys/kernel/random/boot_id). */
  readonly bootId?: string;
  /** Linux: the holder's start time in clock ticks since boot (/proc/<pid>/stat field 22). */
  readonly startTicks?: string;
  /** Linux: the pid namespace its pid belongs to (/proc/self/ns/pid). */
  readonly pidNamespace?: string;
}

/** Options for {@link FileLock.acquire}. */
export interface FileLockOptions {
  readonly logger?: Logger;
}

/** Raw lock-file contents this process holds, by lock path; consulted on exit and for pid reuse. */
const heldByThisProcess = new Map<string, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Best effort on normal exit; SIGKILL leaves the file behind and stale takeover handles it.
  process.on('exit', () => {
    for (const [path, raw] of heldByThisProcess) {
      try {
        if (readFileSync(path, 'utf8') === raw) unlinkSync(path);
      } catch {
        // Nothing useful to do while exiting.
      }
    }
  });
}

const MAX_ATTEMPTS = 8;

function parseOwner(raw: string): LockOwner | null {
  try {
    const o = JSON.parse(raw) as Partial<LockOwner>;
    // pid must be a positive integer: process.kill(0 or negative) would probe a process group.
    if (typeof o.pid !== 'number' || !Number.isSafeInteger(o.pid) || o.pid <= 0) return null;
    if (typeof o.hostname !== 'string') return null;
    return {
      pid: o.pid,
      hostname: o.hostname,
      startedAt: String(o.startedAt ?? ''),
      nonce: String(o.nonce ?? ''),
      ...(typeof o.bootId === 'string' ? { bootId: o.bootId } : {}),
      ...(typeof o.startTicks === 'string' ? { startTicks: o.startTicks } : {}),
      ...(typeof o.pidNamespace === 'string' ? { pidNamespace: o.pidNamespace } : {}),
    };
  } catch {
    return null;
  }
}

const CONFIRM_INTERVAL_MS = 25;

/**
 * After creating the lock, makes sure no racer that judged the previous (stale) lock is about to
 * displace it: the file must still be ours on two reads 25 ms apart. A racer may move it aside
 * and straight back meanwhile (see removeStaleLock), so an absent file is looked at again.
 */
async function confirmHeld(path: string, raw: string): Promise<boolean> {
  let confirmations = 0;
  for (let look = 0; look < 6 && confirmations < 2; look++) {
    await new Promise((resolve) => setTimeout(resolve, CONFIRM_INTERVAL_MS));
    const now = await readRaw(path);
    if (now === raw) confirmations++;
    else if (now !== null) return false;
  }
  return confirmations >= 2;
}

async function readRaw(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isFsError(error, 'ENOENT')) return null;
    throw error;
  }
}

/** False only when `pid` is provably gone (ESRCH) or a zombie; EPERM means it lives under another user. */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user; only ESRCH proves it is gone.
    return !isFsError(error, 'ESRCH');
  }
  return !isZombie(pid);
}

/**
 * A killed CA stays a zombie until its parent reaps it, and signal 0 still reaches a zombie; a
 * restart right after `kill -9` would be refused for a lock held by nobody. Linux only (procfs);
 * elsewhere a zombie counts as alive, as before.
 */
function isZombie(pid: number): boolean {
  return procStatFields(pid)?.[0] === 'Z';
}

/** The fields of /proc/<pid>/stat after "pid (comm)", from the state on; null off Linux or when gone. */
function procStatFields(pid: number): string[] | null {
  const stat = readProc(`/proc/${pid}/stat`);
  // comm may hold spaces and parentheses, so read after the last ")".
  return stat === null ? null : stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The current boot's id on Linux, else null. */
function currentBootId(): string | null {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim() || null;
}

/** This process's pid namespace on Linux (`pid:[4026531836]`), else null. */
function currentPidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

/** When `pid` started, in clock ticks since boot, on Linux; null elsewhere or when it is gone. */
export function processStartTicks(pid: number): string | null {
  // starttime is field 22 of the line, the 20th after "pid (comm)".
  return procStatFields(pid)?.[19] ?? null;
}

/**
 * A live pid is not the holder's when the machine has rebooted since the lock was taken, or when
 * the pid names a process that started at another moment: after a power cut the old CA's pid is
 * often some other daemon's, and its lock then blocked every restart (outside QA). Decided only
 * from what the lock records (a lock written before these fields counts its pid as the holder).
 */
function pidReused(holder: LockOwner): boolean {
  if (holder.bootId === undefined || holder.startTicks === undefined) return false;
  const bootId = currentBootId();
  if (bootId !== null && bootId !== holder.bootId) return true;
  // A pid from another pid namespace (a CA in a container beside one on the host) names some
  // other process here: it says nothing either way, so the lock stands, as before (outside QA).
  if (holder.pidNamespace === undefined || holder.pidNamespace !== currentPidNamespace()) return false;
  const ticks = processStartTicks(holder.pid);
  return ticks !== null && ticks !== holder.startTicks;
}

function ioError(path: string, error: unknown): ConfigError {
  const code = isFsError(error) ? error.code : 'unknown error';
  return new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot create lock file ${path}: ${code}; check that the state directory is writable`, { cause: error });
}

/** An acquired state-directory lock. Release it with {@link FileLock.release}. */
export class FileLock {
  private released = false;

  private constructor(
    /** Absolute path of the lock file. */
    readonly path: string,
    /** The record written into the lock file. */
    readonly owner: LockOwner,
    private readonly raw: string,
    private readonly logger: Logger | undefined,
  ) {}

  /**
   * Takes the lock on `dir` (which must exist). Throws `ConfigError` `RAMPART_ERR_STATE_LOCKED`
   * when a live process holds it, or when it is held from another host (whose liveness cannot
   * be checked from here).
   */
  static async acquire(dir: string, options: FileLockOptions = {}): Promise<FileLock> {
    const path = join(dir, LOCK_FILE_NAME);
    const bootId = currentBootId();
    const startTicks = processStartTicks(process.pid);
    const pidNamespace = currentPidNamespace();
    const owner: LockOwner = {
      pid: process.pid,
      hostname: osHostname(),
      startedAt: new Date().toISOString(),
      nonce: randomBytes(12).toString('hex'),
      ...(bootId !== null && startTicks !== null ? { bootId, startTicks } : {}),
      ...(pidNamespace !== null ? { pidNamespace } : {}),
    };
    const raw = `${JSON.stringify(owner)}\n`;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (await createExclusive(path, raw)) {
        // Displaced by a racer acting on the stale lock it had read: look at the new holder.
        if (!(await confirmHeld(path, raw))) continue;
        heldByThisProcess.set(path, raw);
        installExitHook();
        await fsyncDirectory(dir);
        return new FileLock(path, owner, raw, options.logger);
      }
      const existing = await readRaw(path);
      if (existing === null) continue; // released between our create and read: try again
      const holder = parseOwner(existing);
      if (holder === null) {
        throw new ConfigError('RAMPART_ERR_STATE_LOCKED', `state directory ${dir} has an unreadable lock file ${path}; if no CA is using it, delete that file`);
      }
      if (!isStale(path, holder)) throw lockedError(dir, path, holder);
      if (await removeStaleLock(path, existing)) {
        options.logger?.warn({ lockFile: path, stalePid: holder.pid, staleStartedAt: holder.startedAt }, 'took over state directory lock left by a process that is no longer running (its pid is gone, or now names another process)');
      }
    }
    const holder = parseOwner((await readRaw(path)) ?? '');
    if (holder !== null) throw lockedError(dir, path, holder);
    throw new ConfigError('RAMPART_ERR_STATE_LOCKED', `state directory ${dir} is contended by several starting processes; start one CA per --state-dir`);
  }

  /**
   * Confirms the lock file still names this holder. Call before writing: if another process
   * took the lock (e.g. an operator deleted the file), stop rather than write alongside it.
   */
  async verify(): Promise<void> {
    if (this.released) throw new ConfigError('RAMPART_ERR_STATE_LOCKED', `lock ${this.path} was released`);
    // A racing starter can move our file aside and put it straight back (see removeStaleLock), so a
    // single miss is re-checked before concluding the lock is lost.
    for (let check = 0; check < 3; check++) {
      if ((await readRaw(this.path)) === this.raw) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const now = await readRaw(this.path);
    // Gone, and nobody took it (the whole state directory was removed, say): take it back the same
    // atomic way it was first taken, so the CA can write back the state it holds instead of being
    // told to restart, which on an empty directory would create a new root.
    if (now === null && (await this.retake())) {
      this.logger?.warn({ event: 'lock-restored', lockFile: this.path }, `${LOCK_FILE_NAME} was removed while the CA ran; wrote it back, so no second CA starts on this state directory`);
      return;
    }
    const current = now ?? (await readRaw(this.path));
    const holder = current === null ? null : parseOwner(current);
    throw new ConfigError(
      'RAMPART_ERR_STATE_LOCKED',
      holder === null
        ? `lock ${this.path} disappeared; refusing to write state without it, restart this CA`
        : `lock ${this.path} is now held by pid ${holder.pid} on ${holder.hostname}; refusing to write state, stop one of the CAs`,
    );
  }

  /** Re-creates this lock's file (and its directory) if no one else has; true when it is ours again. */
  private async retake(): Promise<boolean> {
    const dir = dirname(this.path);
    try {
      await makeDirectories(dir, 0o700);
    } catch (error) {
      throw ioError(this.path, error);
    }
    if (!(await createExclusive(this.path, this.raw)) || !(await confirmHeld(this.path, this.raw))) return false;
    await fsyncDirectory(dir);
    return true;
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldByThisProcess.delete(this.path);
    if ((await readRaw(this.path)) === this.raw) await unlink(this.path).catch(() => undefined);
  }
}

/** Creates `path` holding `raw` only if it does not exist. Returns false on EEXIST. */
async function createExclusive(path: string, raw: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(raw);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw ioError(path, error);
  }
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if (isFsError(error, 'EEXIST')) return false;
    if (!isFsError(error, 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV')) throw ioError(path, error);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  // Filesystems without hard links: plain O_EXCL; a reader may briefly see an empty file.
  try {
    const handle = await open(path, 'wx', 0o644);
    try {
      await handle.writeFile(raw);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if (isFsError(error, 'EEXIST')) return false;
    throw ioError(path, error);
  }
}

function isStale(path: string, holder: LockOwner): boolean {
  // Another host's pid means nothing here; only its operator can tell whether it still runs.
  if (holder.hostname !== osHostname()) return false;
  // Our own pid but not a lock we hold: a previous incarnation with the same pid (PID 1 in a
  // restarted container) that was killed without releasing.
  if (holder.pid === process.pid) return !heldByThisProcess.has(path);
  return !processIsAlive(holder.pid) || pidReused(holder);
}

/**
 * Removes a stale lock file whose contents were `staleRaw`, without ever deleting a fresh lock
 * that a racing starter created after someone else removed the stale one. The file is read again
 * just before it is moved, and moved only if it still holds the stale record; the move is
 * atomic, so only one racer gets any given file; and should a fresh lock have been moved after
 * all (created in the instant between that read and the move) it is linked back. Returns true
 * when this call removed the stale lock. Exported so tests can replay the losing racer's
 * interleaving deterministically.
 */
export async function removeStaleLock(path: string, staleRaw: string): Promise<boolean> {
  // The record may be long out of date (the caller read it, then checked the pid): look again.
  if ((await readRaw(path)) !== staleRaw) return false;
  const aside = `${path}.stale-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (error) {
    if (isFsError(error, 'ENOENT')) return false; // another racer moved it first
    throw ioError(path, error);
  }
  try {
    if ((await readRaw(aside)) === staleRaw) return true;
    // Not the stale file: it is a live holder's lock. Put it back; if a third racer created a
    // lock in the gap, that racer keeps it, and the displaced holder finds out in its
    // post-create confirmation or, later, in verify().
    await link(aside, path).catch(() => undefined);
    return false;
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

function lockedError(dir: string, path: string, holder: LockOwner): ConfigError {
  const where = holder.hostname === osHostname() ? '' : ` on host ${holder.hostname} (if that host is gone, delete ${path})`;
  return new ConfigError('RAMPART_ERR_STATE_LOCKED', `state directory ${dir} is in use by pid ${holder.pid}${where}; stop that CA or use another --state-dir`);
}
