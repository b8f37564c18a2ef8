/**
 * Reads the agent's output directory (DESIGN section 7) without ever pairing a key from one
 * generation with a certificate from another: `..data` is resolved once and all three files
 * are read from that one immutable generation directory.
 */
import { readlink } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError, StateError, UnavailableError } from '../core/errors.js';
import { FileTooLarge, NotRegularFile, readRegularFile } from '../files/read-regular-file.js';

/** User-visible file names and the kubelet-style indirection names in the output directory. */
export const CERT_CHAIN_FILE = 'cert-chain.pem';
export const KEY_FILE = 'key.pem';
export const ROOT_CERT_FILE = 'root-cert.pem';
export const DATA_LINK = '..data';
export const DATA_TMP_LINK = '..data_tmp';

/** The three PEM files the agent publishes. */
export interface Credentials {
  /** Leaf certificate first, then intermediates. */
  readonly certChainPem: string;
  readonly keyPem: string;
  /** Trust bundle: every root the workload should trust. */
  readonly rootCertPem: string;
}

/** Credentials plus the generation directory they came from (changes on every swap). */
export interface CredentialsSnapshot extends Credentials {
  readonly generation: string;
}

// A writer deletes the generation before the previous one at each swap, so a reader that resolved
// ..data two swaps ago can find its directory gone; it then simply resolves again.
const MAX_ATTEMPTS = 10;

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as NodeJS.ErrnoException).code : undefined;
}

function notReady(outDir: string): UnavailableError {
  return new UnavailableError('RAMPART_ERR_NOT_READY', `no credentials in ${outDir} yet; the agent has not obtained a certificate`);
}

/** Far above any chain, key or bundle the CA issues; a file past it was put there by something else. */
const MAX_FILE_BYTES = 1 << 20;

async function resolveData(outDir: string): Promise<string | null> {
  try {
    return await readlink(resolve(outDir, DATA_LINK));
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') return null;
    if (code === 'EINVAL') throw new StateError('RAMPART_ERR_INTERNAL', `${resolve(outDir, DATA_LINK)} is not a symlink; is ${outDir} an agent output directory?`);
    if (code === 'EACCES' || code === 'EPERM' || code === 'ENOTDIR') {
      throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot read ${outDir}: ${code}; check the output directory permissions`);
    }
    throw new StateError('RAMPART_ERR_INTERNAL', `cannot read ${outDir}: ${code ?? 'unknown error'}`, { cause: error });
  }
}

/** File `name` of generation `target` (at `dir`); an entry that is not a regular file is a coded refusal. */
async function readEntry(outDir: string, dir: string, target: string, name: string): Promise<string> {
  try {
    return await readRegularFile(resolve(dir, name), MAX_FILE_BYTES);
  } catch (error) {
    if (!(error instanceof NotRegularFile || error instanceof FileTooLarge)) throw error;
    // The agent writes only small regular files there; something else put this one in its place.
    throw new ConfigError(
      'RAMPART_ERR_CONFIG_INVALID',
      `cannot read credentials in ${outDir}: ${target}/${name} ${error.message}; remove it (the agent writes a whole new generation at its next renewal or bundle change)`,
    );
  }
}

/**
 * Reads `cert-chain.pem`, `key.pem` and `root-cert.pem` of one consistent generation. Throws
 * `UnavailableError` `RAMPART_ERR_NOT_READY` when no complete generation has been written yet,
 * and `ConfigError` `RAMPART_ERR_CONFIG_INVALID` when one of the three is not a regular file
 * (a FIFO, a socket, a device, a directory), without opening it in a way that could block.
 */
export async function readCredentials(outDir: string): Promise<CredentialsSnapshot> {
  let target = await resolveData(outDir);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (target === null) throw notReady(outDir);
    const dir = isAbsolute(target) ? target : resolve(outDir, target);
    try {
      const [certChainPem, keyPem, rootCertPem] = await Promise.all([CERT_CHAIN_FILE, KEY_FILE, ROOT_CERT_FILE].map((name) => readEntry(outDir, dir, target as string, name)));
      return { certChainPem: certChainPem as string, keyPem: keyPem as string, rootCertPem: rootCertPem as string, generation: target };
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      if (errnoCode(error) !== 'ENOENT') {
        throw new StateError('RAMPART_ERR_INTERNAL', `cannot read credentials in ${outDir}: ${errnoCode(error) ?? 'unknown error'}`, { cause: error });
      }
      const again = await resolveData(outDir);
      // Same generation and still incomplete: e.g. only a bundle was written so far.
      if (again === target) throw notReady(outDir);
      target = again;
    }
  }
  throw new UnavailableError('RAMPART_ERR_NOT_READY', `credentials in ${outDir} are changing too fast to read; retry`);
}
