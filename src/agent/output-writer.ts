/**
 * Publishes the agent's key, certificate chain and trust bundle the way kubelet updates
 * projected volumes (DESIGN section 7): each generation is written in full into a fresh
 * `..<timestamp>` directory, then one rename of the `..data` symlink switches every file at
 * once. `cert-chain.pem`, `key.pem` and `root-cert.pem` are stable symlinks into `..data`.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdtemp, open, readdir, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, isRampartError, StateError } from '../core/errors.js';
import { fsyncDirectory, isFsError } from '../store/atomic-file.js';
import { makeDirectories } from '../store/make-directories.js';
import { CERT_CHAIN_FILE, DATA_LINK, DATA_TMP_LINK, KEY_FILE, ROOT_CERT_FILE, type Credentials } from './output-reader.js';

/** Options for {@link writeCredentials} and {@link writeBundle}. */
export interface OutputWriterOptions {
  readonly logger?: Logger;
  /** Time used to name the generation directory; defaults to the wall clock. */
  readonly now?: () => number;
}

const FILE_MODES: Record<string, number> = { [CERT_CHAIN_FILE]: 0o644, [KEY_FILE]: 0o600, [ROOT_CERT_FILE]: 0o644 };
/**
 * Mode of the output directory and of any parent the agent creates. Never the process umask
 * alone: under umask 000 a world-writable directory would let any local user repoint `..data`
 * or the file links at a key and chain of their own. A stricter umask may still narrow it.
 */
export const OUTPUT_DIR_MODE = 0o755;
/** Generation directories: `..` + a timestamp (kubelet uses the same shape). */
const GENERATION_DIR = /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{3}\./;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----/g;

/** Swaps in one output directory at a time per process; one agent owns each directory. */
const inFlight = new Map<string, Promise<unknown>>();

function pemLabels(pem: string): string[] | null {
  const labels = [...pem.matchAll(PEM_BLOCK)].map((m) => m[1] as string);
  return labels.length > 0 && pem.replace(PEM_BLOCK, '').trim() === '' ? labels : null;
}

function checkPem(name: string, pem: string, isKey: boolean): void {
  const labels = pemLabels(pem);
  const ok = isKey ? labels?.length === 1 && /PRIVATE KEY$/.test(labels[0] as string) : labels?.every((l) => l === 'CERTIFICATE') === true;
  // Never echo the content: it may be a private key.
  if (!ok) throw new StateError('RAMPART_ERR_INTERNAL', `refusing to write ${name}: it is not ${isKey ? 'one PEM private key' : 'PEM certificates'}`);
}

function ioError(action: string, path: string, error: unknown): Error {
  if (isRampartError(error)) return error;
  const code = isFsError(error) ? error.code : 'unknown error';
  if (isFsError(error, 'EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EEXIST')) {
    return new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot ${action} ${path}: ${code}; check that --out-dir is a writable directory`, { cause: error });
  }
  return new StateError('RAMPART_ERR_INTERNAL', `cannot ${action} ${path}: ${code}`, { cause: error });
}

function timestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`;
}

async function writeDurable(path: string, data: string, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.chmod(mode); // exact mode regardless of umask
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Points `link` at `target` atomically (symlink under a temp name, then rename over). */
async function replaceSymlink(dir: string, link: string, target: string): Promise<void> {
  const temp = join(dir, link === DATA_LINK ? DATA_TMP_LINK : `.${link}.${randomBytes(4).toString('hex')}.tmp`);
  await unlink(temp).catch(() => undefined); // leftover of a crashed swap
  await symlink(target, temp);
  try {
    await rename(temp, join(dir, link));
  } catch (error) {
    // Each failed attempt would otherwise leave another temp link behind.
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * A directory where a link belongs cannot be replaced by a rename (EISDIR), so every swap would
 * fail there; say which entry is in the way before writing anything.
 */
async function refuseDirectoriesInTheWay(outDir: string): Promise<void> {
  for (const name of [DATA_LINK, CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE]) {
    const path = join(outDir, name);
    if ((await lstat(path).catch(() => null))?.isDirectory()) {
      throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot write to ${outDir}: ${path} is a directory where the agent keeps a symlink; remove it`);
    }
  }
}

async function ensureUserLinks(outDir: string): Promise<void> {
  for (const name of [CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE]) {
    const target = `${DATA_LINK}/${name}`;
    const current = await lstat(join(outDir, name)).catch(() => null);
    if (current?.isSymbolicLink() && (await readlink(join(outDir, name))) === target) continue;
    await replaceSymlink(outDir, name, target);
  }
}

/**
 * Writes one generation and swaps it in; `files` maps user-visible names to contents. A swap
 * that fails leaves the directory as it found it: the previous generation in place and whole,
 * and nothing of the new one behind.
 */
async function swap(outDir: string, files: ReadonlyMap<string, string>, options: OutputWriterOptions): Promise<string> {
  await makeDirectories(outDir, OUTPUT_DIR_MODE);
  await refuseDirectoriesInTheWay(outDir);
  const stamp = timestamp((options.now ?? Date.now)());
  const genPath = await mkdtemp(join(outDir, `..${stamp}.`));
  const generation = basename(genPath);
  let previous: string | undefined;
  try {
    // mkdtemp makes 0700; the workload may run as another user and must traverse it.
    await chmod(genPath, 0o755);
    for (const [name, data] of files) await writeDurable(join(genPath, name), data, FILE_MODES[name] as number);
    await fsyncDirectory(genPath);
    // The stable links before ..data: should one fail, ..data still names the previous
    // generation, which can then stay. (On a first write they dangle until ..data exists, as
    // if they were not there yet.)
    await ensureUserLinks(outDir);
    previous = await readlink(join(outDir, DATA_LINK)).catch(() => undefined);
    await replaceSymlink(outDir, DATA_LINK, generation);
  } catch (error) {
    await rm(genPath, { recursive: true, force: true });
    throw error;
  }
  await fsyncDirectory(outDir);
  // The previous generation stays until the next swap: a reader that resolved ..data just before
  // this one can still read its files (outside QA: removed at once, the README's "resolve
  // ..data, then read" met ENOENT). Older ones, and any left by a crash between write and swap,
  // go now; a reader that slept through two swaps retries (see readCredentials).
  for (const name of await readdir(outDir)) {
    if (name !== generation && name !== previous && GENERATION_DIR.test(name)) {
      await rm(join(outDir, name), { recursive: true, force: true });
      options.logger?.debug({ outDir, generation: name }, 'removed old credentials generation');
    }
  }
  return generation;
}

function serialized<T>(outDir: string, fn: () => Promise<T>): Promise<T> {
  const key = resolve(outDir);
  const previous = inFlight.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const settled = run.catch(() => undefined);
  inFlight.set(key, settled);
  void settled.then(() => {
    if (inFlight.get(key) === settled) inFlight.delete(key);
  });
  return run;
}

/**
 * Atomically replaces the key, certificate chain and trust bundle in `outDir` (created if
 * missing). Returns the new generation directory name. Readers using {@link readCredentials}
 * or the `..data` symlink see either the old or the new set, never a mix.
 */
export async function writeCredentials(outDir: string, credentials: Credentials, options: OutputWriterOptions = {}): Promise<string> {
  checkPem(CERT_CHAIN_FILE, credentials.certChainPem, false);
  checkPem(KEY_FILE, credentials.keyPem, true);
  checkPem(ROOT_CERT_FILE, credentials.rootCertPem, false);
  const files = new Map([
    [CERT_CHAIN_FILE, credentials.certChainPem],
    [KEY_FILE, credentials.keyPem],
    [ROOT_CERT_FILE, credentials.rootCertPem],
  ]);
  return serialized(outDir, async () => {
    try {
      const generation = await swap(outDir, files, options);
      options.logger?.info({ outDir, generation }, 'wrote new credentials');
      return generation;
    } catch (error) {
      throw ioError('write credentials to', outDir, error);
    }
  });
}

/** The key and certificate chain the agent holds in memory. */
export type HeldCertificate = Pick<Credentials, 'certChainPem' | 'keyPem'>;

/**
 * Atomically replaces the trust bundle, writing beside it the key and certificate chain the
 * caller holds (`held`), or the bundle alone when it holds none yet (`readCredentials` then still
 * answers not-ready). Returns the new generation directory name.
 *
 * The key and chain come from memory, never from the current generation on disk: a file damaged
 * there (truncated, overwritten) would be copied into every later generation, and one replaced by
 * a FIFO would hang the copy.
 */
export async function writeBundle(outDir: string, rootCertPem: string, held: HeldCertificate | null, options: OutputWriterOptions = {}): Promise<string> {
  checkPem(ROOT_CERT_FILE, rootCertPem, false);
  const files = new Map([[ROOT_CERT_FILE, rootCertPem]]);
  if (held !== null) {
    checkPem(CERT_CHAIN_FILE, held.certChainPem, false);
    checkPem(KEY_FILE, held.keyPem, true);
    files.set(CERT_CHAIN_FILE, held.certChainPem);
    files.set(KEY_FILE, held.keyPem);
  }
  return serialized(outDir, async () => {
    try {
      const generation = await swap(outDir, files, options);
      options.logger?.info({ outDir, generation }, 'wrote new trust bundle');
      return generation;
    } catch (error) {
      throw ioError('write trust bundle to', outDir, error);
    }
  });
}
