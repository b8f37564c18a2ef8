/**
 * The embedded state store (DESIGN section 8): CA state in `<dir>/state.json` (0600), the trust
 * bundle in `<dir>/root-cert.pem` (0644), both replaced atomically, and `<dir>/ca.lock` held for
 * the store's lifetime so a second CA cannot use the same directory. A start that fails after
 * creating the state closes the store with `abandon()`, which puts the directory back.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { chmod, readdir, readFile, realpath, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, ConflictError, isRampartError, StateError } from '../core/errors.js';
import type { CaState, StateStore, StoredState, UnreadableState } from '../core/ports.js';
import { createFileExclusive, isAtomicTempFile, isFsError, writeFileAtomic } from './atomic-file.js';
import { FileLock, LOCK_FILE_NAME, processIsAlive } from './file-lock.js';
import { makeDirectories } from './make-directories.js';
import { removeCreatedDirectories, StartSnapshot, type RollbackReport } from './start-snapshot.js';
import { declaresNewerSchema, decodeState, encodeState } from './state-codec.js';

/** File holding the CA state inside the state directory. */
export const STATE_FILE_NAME = 'state.json';
/** File holding the published trust bundle inside the state directory. */
export const BUNDLE_FILE_NAME = 'root-cert.pem';

const STATE_MODE = 0o600;
const BUNDLE_MODE = 0o644;
const DIR_MODE = 0o700;
const DEFAULT_POLL_MS = 2000;

/** Options for {@link FileStateStore.open}. */
export interface FileStateStoreOptions {
  readonly logger?: Logger;
  /** How often `watch()` stats state.json; default 2000 ms. */
  readonly pollIntervalMs?: number;
  /**
   * Other files a CA start may create in the directory (the dev token issuer's), which
   * `abandon()` puts back along with state.json and root-cert.pem, and which the watch writes
   * back as first seen when one is removed while the CA runs.
   */
  readonly startFiles?: readonly string[];
}

/** The store's revision of some state bytes: SHA-256, lowercase hex. */
export function stateRevision(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Maps an fs failure to a coded error; never includes file contents. */
const OPERATOR_FS_CODES = ['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'EEXIST'];

/** `operatorCodes`: the fs error codes that mean a wrong or unusable --state-dir, not a CA fault. */
function ioError(action: string, path: string, error: unknown, operatorCodes: readonly string[] = OPERATOR_FS_CODES): Error {
  if (isRampartError(error)) return error;
  const code = isFsError(error) ? error.code : 'unknown error';
  if (isFsError(error, ...operatorCodes)) {
    return new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot ${action} ${path}: ${code}; check that --state-dir is a writable directory owned by the CA user`, { cause: error });
  }
  return new StateError('RAMPART_ERR_INTERNAL', `cannot ${action} ${path}: ${code}`, { cause: error });
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (error) {
    if (isFsError(error, 'ENOENT')) return null;
    throw ioError('read', path, error);
  }
}

const BUNDLE_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----/g;

function isCertificateBundle(pem: string): boolean {
  const blocks = [...pem.matchAll(BUNDLE_BLOCK)];
  const rest = pem.replace(BUNDLE_BLOCK, '').trim();
  return blocks.length > 0 && rest === '' && blocks.every((b) => b[1] === 'CERTIFICATE');
}

/** True for leftovers of a lock acquisition by a process that has since died. */
function isDeadLockLeftover(name: string): boolean {
  const match = /^ca\.lock\.(?:(\d+)\.[0-9a-f]+\.tmp|stale-(\d+)-[0-9a-f]+)$/.exec(name);
  const pid = Number(match?.[1] ?? match?.[2]);
  return match !== null && Number.isSafeInteger(pid) && pid > 0 && !processIsAlive(pid);
}

/** {@link StateStore} on a local directory. Create with {@link FileStateStore.open}. */
// Stands in for a stat signature while state.json does not exist.
const STATE_FILE_MISSING = 'missing';

export class FileStateStore implements StateStore {
  /** Absolute, symlink-free path of the state directory. */
  readonly dir: string;
  readonly statePath: string;
  readonly bundlePath: string;
  private readonly lock: FileLock;
  private readonly logger: Logger | undefined;
  private readonly pollIntervalMs: number;
  /** The last reason the lock could not be kept, so it is logged once. */
  private lockProblem = '';
  /** `startFiles` as first seen while the CA ran, to write back if removed. */
  private readonly keptFiles = new Map<string, { bytes: Buffer; mode: number }>();
  private readonly keptFileNames: readonly string[];
  /** Revision this instance last loaded, saved or announced; watch() reports only others. */
  private knownRevision: string | null = null;
  /** stat() fingerprint of state.json at the last poll, so unchanged files are not re-read. */
  private lastStat = '';
  // What publishBundle last wrote, and root-cert.pem's stat when it was last found intact.
  private publishedBundle: Buffer | null = null;
  private bundleStat = '';
  private readonly listeners = new Set<(stored: StoredState | null) => void>();
  private readonly unreadableListeners = new Set<(unreadable: UnreadableState) => void>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Serializes save/publish/poll within this process; the lock covers other processes. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The directory as open() found it when it held no state; null when it held state (never rolled back). */
  private startSnapshot: StartSnapshot | null = null;
  /** Directories open() created, outermost first. */
  private createdDirectories: readonly string[] = [];
  /** The directory's permission bits before open() tightened them to 0700, or null if it did not. */
  private tightenedFrom: number | null = null;

  private constructor(dir: string, lock: FileLock, options: FileStateStoreOptions) {
    this.dir = dir;
    this.statePath = join(dir, STATE_FILE_NAME);
    this.bundlePath = join(dir, BUNDLE_FILE_NAME);
    this.lock = lock;
    this.logger = options.logger;
    this.pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
    this.keptFileNames = options.startFiles ?? [];
  }

  /**
   * Creates `dir` (0700) if needed and takes its lock. Throws `ConfigError`
   * `RAMPART_ERR_STATE_LOCKED` when another live CA holds it, `RAMPART_ERR_CONFIG_INVALID` when
   * the directory cannot be created or used.
   */
  static async open(dir: string, options: FileStateStoreOptions = {}): Promise<FileStateStore> {
    let resolved: string;
    let created: string[] = [];
    let tightenedFrom: number | null = null;
    // A directory this call created is removed again if the store does not open after all.
    const failed = async (error: unknown): Promise<never> => {
      await removeCreatedDirectories(created);
      throw error;
    };
    try {
      created = await makeDirectories(dir, DIR_MODE);
      const info = await stat(dir);
      if (!info.isDirectory()) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `state directory ${dir} is not a directory`);
      if ((info.mode & 0o077) !== 0) {
        // A checkout's certs/ comes out of git as 0755: tighten it when it is ours, warn otherwise.
        const owned = typeof process.getuid === 'function' && info.uid === process.getuid();
        if (owned) {
          await chmod(dir, DIR_MODE);
          tightenedFrom = info.mode & 0o777;
        }
        else options.logger?.warn({ stateDir: dir, mode: (info.mode & 0o777).toString(8) }, 'state directory is accessible to other users; chmod 700 it');
      }
      resolved = await realpath(dir);
    } catch (error) {
      // ENOENT while creating it: a parent refuses new entries (procfs, sysfs), so the path is wrong.
      return failed(ioError('create state directory', dir, error, [...OPERATOR_FS_CODES, 'ENOENT']));
    }
    const lock = await FileLock.acquire(resolved, options.logger === undefined ? {} : { logger: options.logger }).catch(failed);
    const store = new FileStateStore(resolved, lock, options);
    store.createdDirectories = created;
    store.tightenedFrom = tightenedFrom;
    try {
      await store.sweepLeftovers();
      // Taken under the lock, so nothing but this CA can have written the files meanwhile.
      if ((await readIfExists(store.statePath)) === null) {
        store.startSnapshot = await StartSnapshot.take(resolved, [STATE_FILE_NAME, BUNDLE_FILE_NAME, ...(options.startFiles ?? [])]);
        await store.warnOfEarlierBundle();
      }
    } catch (error) {
      await lock.release();
      return failed(ioError('clean up', resolved, error));
    }
    return store;
  }

  /**
   * A bundle file beside no state: an earlier CA ran here and its state (the root keys) is gone.
   * This start makes a new root that every agent must learn and replaces the file, so say so
   * loudly, naming the earlier roots; it logged only an info-level root-created (outside QA).
   */
  private async warnOfEarlierBundle(): Promise<void> {
    const bundle = await readIfExists(this.bundlePath);
    if (bundle === null) return;
    const fingerprints: string[] = [];
    for (const block of bundle.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      try {
        fingerprints.push(new X509Certificate(block).fingerprint256.replaceAll(':', '').toLowerCase());
      } catch {
        // Not a certificate after all; the warning stands on the file alone.
      }
    }
    this.logger?.warn(
      { event: 'earlier-bundle-without-state', stateDir: this.dir, earlierRoots: fingerprints },
      `${BUNDLE_FILE_NAME} of an earlier CA is here (${fingerprints.length} root(s)) but ${STATE_FILE_NAME} is not: this start creates a new root that every agent must learn, and replaces ${BUNDLE_FILE_NAME}; to keep the earlier root, stop this CA and put ${STATE_FILE_NAME} back from a backup`,
    );
  }

  /** Removes temp files of writes interrupted by a crash; safe because we hold the lock. */
  private async sweepLeftovers(): Promise<void> {
    for (const name of await readdir(this.dir)) {
      const ours = [STATE_FILE_NAME, BUNDLE_FILE_NAME, ...this.keptFileNames].some((file) => isAtomicTempFile(name, file));
      if (ours || (name.startsWith(`${LOCK_FILE_NAME}.`) && isDeadLockLeftover(name))) {
        await unlink(join(this.dir, name)).catch(() => undefined);
        this.logger?.debug({ file: name }, 'removed leftover of an interrupted write');
      }
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw new StateError('RAMPART_ERR_INTERNAL', `state store ${this.dir} is closed`);
  }

  /** Runs `fn` after every earlier queued operation of this instance. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async load(): Promise<StoredState | null> {
    this.ensureOpen();
    const bytes = await readIfExists(this.statePath);
    if (bytes === null) return null;
    const state = decodeState(bytes.toString('utf8'));
    const revision = stateRevision(bytes);
    this.knownRevision = revision;
    return { state, revision };
  }

  save(next: CaState, expectedRevision: string | null): Promise<string> {
    return this.serialize(async () => {
      this.ensureOpen();
      const text = encodeState(next);
      await this.lock.verify();
      const current = await readIfExists(this.statePath);
      const currentRevision = current === null ? null : stateRevision(current);
      if (currentRevision !== expectedRevision) {
        throw new ConflictError(
          'RAMPART_ERR_STATE_CONFLICT',
          currentRevision === null
            ? `CA state in ${this.statePath} was removed since it was loaded; load it again and retry`
            : expectedRevision === null
              ? `CA state already exists in ${this.statePath}; load it and retry`
              : `CA state in ${this.statePath} changed since it was loaded; load it again and retry`,
        );
      }
      const bytes = Buffer.from(text, 'utf8');
      try {
        await writeFileAtomic(this.statePath, bytes, { mode: STATE_MODE });
      } catch (error) {
        throw ioError('write', this.statePath, error);
      }
      const revision = stateRevision(bytes);
      this.knownRevision = revision;
      // The watch must judge the file afresh: after a write-back of a deleted state it still
      // remembers "missing", and a second deletion before its next tick would go unreported.
      this.lastStat = '';
      return revision;
    });
  }

  publishBundle(pem: string): Promise<void> {
    return this.serialize(async () => {
      this.ensureOpen();
      if (!isCertificateBundle(pem)) {
        throw new StateError('RAMPART_ERR_STATE_CORRUPT', 'refusing to publish a trust bundle that is not one or more PEM CERTIFICATE blocks');
      }
      await this.lock.verify();
      try {
        await writeFileAtomic(this.bundlePath, pem, { mode: BUNDLE_MODE });
      } catch (error) {
        throw ioError('write', this.bundlePath, error);
      }
      this.publishedBundle = Buffer.from(pem, 'utf8');
      this.bundleStat = '';
    });
  }

  watch(listener: (stored: StoredState | null) => void, onUnreadable?: (unreadable: UnreadableState) => void): () => void {
    this.ensureOpen();
    this.listeners.add(listener);
    if (onUnreadable !== undefined) this.unreadableListeners.add(onUnreadable);
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.serialize(() => this.poll()), this.pollIntervalMs);
      // Polling must never be what keeps a finished CA process alive.
      this.timer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (onUnreadable !== undefined) this.unreadableListeners.delete(onUnreadable);
      if (this.listeners.size === 0) this.stopTimer();
    };
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    if (this.closed || this.listeners.size === 0) return;
    await this.pollLock();
    await this.pollState();
    await this.pollBundle();
    await this.pollKeptFiles();
  }

  /**
   * The dev issuer's key and JWKS, as first seen, are written back when removed while the CA
   * runs. With the whole state directory deleted, the state, bundle and lock came back but the
   * key did not; the next `rampart token` made a new one, the CA took up its JWKS, and every
   * token minted before got 401 (outside QA). Written only where no file is (a link, as the
   * issuer creates them), so a key someone made meanwhile is never replaced.
   */
  private async pollKeptFiles(): Promise<void> {
    for (const name of this.keptFileNames) {
      const path = join(this.dir, name);
      try {
        const bytes = await readIfExists(path);
        const kept = this.keptFiles.get(name);
        if (bytes !== null) {
          if (kept === undefined) this.keptFiles.set(name, { bytes, mode: (await stat(path)).mode & 0o777 });
          continue;
        }
        if (kept === undefined) continue;
        await this.lock.verify();
        if (await createFileExclusive(path, kept.bytes, { mode: kept.mode })) {
          this.logger?.warn({ event: 'file-restored', file: path }, `${name} was removed while the CA ran; wrote it back as it was`);
        }
      } catch (error) {
        this.logger?.warn({ err: error, file: path }, 'cannot check or restore a file of the CA');
      }
    }
  }

  /** The lock is this CA's to keep too: a removed lock file is written again (file-lock.ts logs `lock-restored`). */
  private async pollLock(): Promise<void> {
    try {
      await this.lock.verify();
      this.lockProblem = '';
    } catch (error) {
      // Said once while it lasts (another CA took the lock, say), not every tick.
      const problem = (error as Error).message;
      if (problem !== this.lockProblem) this.logger?.warn({ err: error }, 'cannot keep the state directory lock');
      this.lockProblem = problem;
    }
  }

  /**
   * root-cert.pem is this CA's to keep: agents and operators read the trust bundle from it. Removed
   * or overwritten while the CA runs, it is written again with what was last published. Not while
   * state.json is missing: then the runtime writes the state back and republishes the bundle itself.
   */
  private async pollBundle(): Promise<void> {
    const published = this.publishedBundle;
    if (published === null || this.lastStat === STATE_FILE_MISSING) return;
    try {
      let signature = 'missing';
      try {
        const info = await stat(this.bundlePath);
        signature = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
      } catch (error) {
        if (!isFsError(error, 'ENOENT')) throw error;
      }
      if (signature === this.bundleStat) return;
      const bytes = signature === 'missing' ? null : await readIfExists(this.bundlePath);
      if (bytes !== null && bytes.equals(published)) {
        this.bundleStat = signature;
        return;
      }
      await this.lock.verify();
      await writeFileAtomic(this.bundlePath, published, { mode: BUNDLE_MODE });
      this.bundleStat = '';
      this.logger?.warn(
        { event: 'bundle-file-restored', file: this.bundlePath, found: bytes === null ? 'nothing' : 'other content' },
        `${BUNDLE_FILE_NAME} was ${bytes === null ? 'removed' : 'changed'} while the CA ran; wrote the current trust bundle back (the CA owns this file)`,
      );
    } catch (error) {
      this.logger?.warn({ err: error, bundleFile: this.bundlePath }, 'cannot check or restore the trust bundle file');
    }
  }

  /** One watch tick: stat first (cheap), read and hash only when the file looks different. */
  private async pollState(): Promise<void> {
    try {
      let signature: string;
      try {
        const info = await stat(this.statePath);
        signature = `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
      } catch (error) {
        if (!isFsError(error, 'ENOENT')) throw error;
        // Reported once per disappearance of a state this instance knew; the runtime writes it back.
        if (this.knownRevision !== null && this.lastStat !== STATE_FILE_MISSING) {
          this.lastStat = STATE_FILE_MISSING;
          this.emit(null);
        }
        return;
      }
      if (signature === this.lastStat) return;
      const bytes = await readIfExists(this.statePath);
      if (bytes === null) return;
      // Remember the signature before decoding so a corrupt file is reported once, not per tick.
      this.lastStat = signature;
      const revision = stateRevision(bytes);
      if (revision === this.knownRevision) return;
      const text = bytes.toString('utf8');
      let state: CaState;
      try {
        state = decodeState(text);
      } catch (error) {
        if (!isRampartError(error) || this.unreadableListeners.size === 0) throw error;
        this.emitUnreadable({ revision, reason: error.message, newerSchema: declaresNewerSchema(text) });
        return;
      }
      this.knownRevision = revision;
      this.emit({ state, revision });
    } catch (error) {
      // Keep polling: a corrupt or unreadable file may be fixed by the operator.
      this.logger?.warn({ err: error, stateFile: this.statePath }, 'cannot read changed CA state');
    }
  }

  private emitUnreadable(unreadable: UnreadableState): void {
    for (const listener of [...this.unreadableListeners]) {
      try {
        listener(unreadable);
      } catch (error) {
        this.logger?.error({ err: error }, 'state watch listener failed');
      }
    }
  }

  private emit(stored: StoredState | null): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(stored);
      } catch (error) {
        this.logger?.error({ err: error }, 'state watch listener failed');
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    this.listeners.clear();
    await this.queue;
    await this.lock.release();
  }

  /**
   * Closes the store after a CA start failed. If the directory held no state when this store
   * opened it, the state, trust bundle and `startFiles` this start wrote are removed (or, if they
   * existed before, written back as they were) and the directories open() created are removed,
   * so the next start does not sign under a root nobody saw served. A directory that held state
   * is left alone. Returns what was put back, or null when nothing was to be.
   */
  async abandon(): Promise<RollbackReport | null> {
    if (this.closed) return null;
    this.closed = true;
    this.stopTimer();
    this.listeners.clear();
    await this.queue;
    const snapshot = this.startSnapshot;
    if (snapshot === null) {
      await this.lock.release();
      return null;
    }
    let files: Pick<RollbackReport, 'removed' | 'restored' | 'failed'>;
    try {
      // Still ours? Otherwise the files may now be another CA's: leave them.
      await this.lock.verify();
      files = await snapshot.restoreFiles();
    } catch (error) {
      files = { removed: [], restored: [], failed: [`${LOCK_FILE_NAME}: ${isRampartError(error) ? error.message : 'cannot verify the lock'}`] };
    }
    await this.lock.release();
    // After the lock file is gone, or the state directory would not be empty.
    const dirs = files.failed.length === 0 ? await removeCreatedDirectories(this.createdDirectories) : { removedDirectories: [], failed: [] };
    const restored = [...files.restored];
    const failed = [...files.failed, ...dirs.failed];
    // A directory that stays gets its permissions back too (a checkout's certs/ is 0755).
    if (this.tightenedFrom !== null && files.failed.length === 0) {
      try {
        await chmod(this.dir, this.tightenedFrom);
        restored.push(`${this.dir} (mode ${this.tightenedFrom.toString(8)})`);
      } catch (error) {
        failed.push(`${this.dir}: mode ${this.tightenedFrom.toString(8)} not restored (${isFsError(error) ? (error.code ?? 'error') : 'error'})`);
      }
    }
    return { restored, removed: files.removed, removedDirectories: dirs.removedDirectories, failed };
  }
}
