/**
 * The dev issuer's key pair, kept in the CA state directory: `dev-issuer.key.pem` (ES256
 * PKCS#8, 0600) and `dev-issuer.jwks.json` (0644). Created on first use; two processes racing
 * to create it end up with the same key because each file appears with a single `link()`.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import { makeDirectories } from '../store/make-directories.js';
import { removeDeadWriterLeftovers } from '../store/dead-writer-leftovers.js';
import { join } from 'node:path';
import { calculateJwkThumbprint, type JSONWebKeySet, type JWK } from 'jose';
import { ConfigError, StateError, isRampartError } from '../core/errors.js';

/** File name of the dev issuer's private key inside the state directory. */
export const DEV_KEY_FILE = 'dev-issuer.key.pem';
/** File name of the dev issuer's public JWKS inside the state directory. */
export const DEV_JWKS_FILE = 'dev-issuer.jwks.json';

/** The dev issuer as loaded from (or just created in) the state directory. */
export interface DevIssuer {
  readonly keyPath: string;
  readonly jwksPath: string;
  /** RFC 7638 thumbprint of the public key, used as the JWT `kid`. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly jwks: JSONWebKeySet;
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return null;
    throw err;
  }
}

async function writeTemp(path: string, content: string, mode: number): Promise<string> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(content);
    // The umask may have stripped bits from `mode`; set exactly what the contract promises.
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return tmp;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the link itself is still atomic.
  } finally {
    await handle.close();
  }
}

/** Creates `path` with `content` only if it does not exist yet; returns false when another writer won. */
async function createExclusive(path: string, content: string, mode: number): Promise<boolean> {
  const tmp = await writeTemp(path, content, mode);
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function replaceAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = await writeTemp(path, content, mode);
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

function loadKey(pem: string, keyPath: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (cause) {
    throw new StateError('RAMPART_ERR_STATE_CORRUPT', `${keyPath} is not a PEM private key; delete it to have a new dev issuer key created`, { cause });
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new StateError('RAMPART_ERR_STATE_CORRUPT', `${keyPath} is not an ECDSA P-256 key; delete it to have a new dev issuer key created`);
  }
  return key;
}

function jwksHolds(text: string, kid: string): boolean {
  try {
    const doc = JSON.parse(text) as { keys?: Array<{ kid?: unknown }> };
    return Array.isArray(doc.keys) && doc.keys.some((k) => k.kid === kid);
  } catch {
    return false;
  }
}

async function ensure(stateDir: string): Promise<DevIssuer> {
  await makeDirectories(stateDir, 0o700);
  // A `rampart token` killed mid-write leaves a copy of the private key under a temp name.
  await removeDeadWriterLeftovers(stateDir, [DEV_KEY_FILE, DEV_JWKS_FILE]);
  const keyPath = join(stateDir, DEV_KEY_FILE);
  const jwksPath = join(stateDir, DEV_JWKS_FILE);

  let keyPem = await readIfExists(keyPath);
  if (keyPem === null) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await createExclusive(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    await syncDir(stateDir);
    // Winner or loser, the key is whatever the link left in place.
    keyPem = await readFile(keyPath, 'utf8');
  }
  const privateKey = loadKey(keyPem, keyPath);
  const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  const jwks: JSONWebKeySet = { keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' }] };
  const jwksText = `${JSON.stringify(jwks, null, 2)}\n`;

  // The JWKS is derived from the key, so racing writers produce identical bytes.
  const existing = await readIfExists(jwksPath);
  if (existing === null) {
    await createExclusive(jwksPath, jwksText, 0o644);
    await syncDir(stateDir);
  } else if (!jwksHolds(existing, kid)) {
    // A JWKS left from an earlier key (its key file was deleted): rewrite it for the current key.
    await replaceAtomically(jwksPath, jwksText, 0o644);
    await syncDir(stateDir);
  }
  return { keyPath, jwksPath, kid, privateKey, jwks };
}

/**
 * Loads the dev issuer from `stateDir`, creating the key and JWKS files when absent. Safe when
 * several processes call it at once. Throws StateError for an unusable existing key and
 * ConfigError when the directory cannot be written.
 */
export async function ensureDevIssuer(stateDir: string): Promise<DevIssuer> {
  try {
    return await ensure(stateDir);
  } catch (err) {
    if (isRampartError(err)) throw err;
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot set up the dev token issuer in ${stateDir}: ${(err as Error).message}`, { cause: err });
  }
}
