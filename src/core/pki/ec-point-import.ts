/**
 * Turns an uncompressed EC point into a KeyObject as cheaply as node allows.
 *
 * Every certificate request carries a fresh key, and node:crypto's public imports all cost about
 * a verify: JWK runs OpenSSL's full key check (a scalar multiplication by the group order, which
 * cofactor-1 curves such as P-256 and P-384 do not need), DER goes through OpenSSL 3.0's generic
 * decoder. WebCrypto's importKey('raw') reaches the cheap import (the point decoded and checked
 * to lie on its curve, nothing more), but only behind a CryptoKey and a promise that cost what
 * the skipped check saves. Node builds its own KeyObjects from that import synchronously; this
 * module reaches the same two classes through a KeyObject it made itself.
 *
 * They are not public API, so the route is taken only after it has proved itself on this node:
 * a point imported by it must equal the key it came from and verify that key's signature, and a
 * point moved off its curve, written with a coordinate of p or more, or of all-zero coordinates
 * must be refused. Anything else falls back to the JWK import.
 */
import { createPublicKey, createVerify, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

export type EcCurve = 'P-256' | 'P-384';

const OPENSSL_CURVE: Record<EcCurve, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };
const COORDINATE_BYTES: Record<EcCurve, number> = { 'P-256': 32, 'P-384': 48 };

/** Thrown when a point does not decode to a point on its curve. */
export class EcPointError extends Error {}

function isUncompressedOfSize(point: Buffer, coordinateBytes: number): boolean {
  return point.length === 1 + 2 * coordinateBytes && point[0] === 0x04;
}

export type RawImport = (curve: EcCurve, point: Buffer) => KeyObject;

interface KeyHandle {
  initECRaw(curveName: string, point: Buffer): boolean;
}

/** The import node documents: JWK coordinates, with OpenSSL's full key check. */
export function importEcPointByJwk(curve: EcCurve, point: Buffer): KeyObject {
  const size = COORDINATE_BYTES[curve];
  if (!isUncompressedOfSize(point, size)) throw new EcPointError(`not an uncompressed ${curve} point`);
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: curve, x: point.subarray(1, 1 + size).toString('base64url'), y: point.subarray(1 + size).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    throw new EcPointError(`the ${curve} point is not on its curve`);
  }
}

interface NodeKeyClasses {
  readonly Handle: new () => KeyHandle;
  readonly PublicKey: new (handle: KeyHandle) => KeyObject;
}

/** The two classes behind node's own KeyObjects, or null when this node does not have them in the shape expected. */
function findNodeKeyClasses(): NodeKeyClasses | null {
  const probe = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  const handleSymbol = Object.getOwnPropertySymbols(probe).find((symbol) => symbol.description === 'kHandle');
  if (handleSymbol === undefined) return null;
  const handle = (probe as unknown as Record<symbol, unknown>)[handleSymbol];
  const Handle = (handle as { constructor?: unknown } | null)?.constructor as (new () => KeyHandle) | undefined;
  const PublicKey = Object.getPrototypeOf(probe)?.constructor as (new (handle: KeyHandle) => KeyObject) | undefined;
  if (typeof Handle !== 'function' || typeof PublicKey !== 'function' || typeof Handle.prototype.initECRaw !== 'function') return null;
  return { Handle, PublicKey };
}

/** An import that puts each point into the handle `handleFor` gives, and wraps it with `keyFor`. */
function rawImportInto(handleFor: (curve: EcCurve) => KeyHandle, keyFor: (curve: EcCurve, handle: KeyHandle) => KeyObject): RawImport {
  return (curve, point) => {
    // OpenSSL would also take the compressed and hybrid forms and the point at infinity here.
    if (!isUncompressedOfSize(point, COORDINATE_BYTES[curve])) throw new EcPointError(`not an uncompressed ${curve} point`);
    const handle = handleFor(curve);
    if (!handle.initECRaw(OPENSSL_CURVE[curve], point)) throw new EcPointError(`the ${curve} point is not on its curve`);
    return keyFor(curve, handle);
  };
}

/** node's own raw import into a new KeyObject per point, or null when this node lacks it. */
function findNodeRawImport(): RawImport | null {
  const classes = findNodeKeyClasses();
  if (classes === null) return null;
  return rawImportInto(
    () => new classes.Handle(),
    (_curve, handle) => new classes.PublicKey(handle),
  );
}

/**
 * node's own raw import into one KeyObject per curve, which every import overwrites; or null when
 * this node lacks it. A failed import leaves the previous key in place, and the caller gets an
 * EcPointError, never that key.
 */
function findNodeReusedImport(): RawImport | null {
  const classes = findNodeKeyClasses();
  if (classes === null) return null;
  const slot = (): { handle: KeyHandle; key: KeyObject } => {
    const handle = new classes.Handle();
    return { handle, key: new classes.PublicKey(handle) };
  };
  const slots: Record<EcCurve, { handle: KeyHandle; key: KeyObject }> = { 'P-256': slot(), 'P-384': slot() };
  return rawImportInto(
    (curve) => slots[curve].handle,
    (curve) => slots[curve].key,
  );
}

/**
 * Points of each curve written with a coordinate of p or more: x + p in place of its small x (5 on
 * P-256, 2 on P-384), and y + p in place of y = 1. Each is the same point to modular arithmetic,
 * but an encoding SEC 1 forbids and OpenSSL refuses (exported for tests).
 */
export const NON_CANONICAL_POINTS: Record<EcCurve, readonly Buffer[]> = {
  'P-256': [
    Buffer.from(
      '04' + 'ffffffff00000001000000000000000000000001000000000000000000000004' + '459243b9aa581806fe913bce99817ade11ca503c64d9a3c533415c083248fbcc',
      'hex',
    ),
    Buffer.from(
      '04' + '09e78d4ef60d05f750f6636209092bc43cbdd6b47e11a9de20a9feb2a50bb96c' + 'ffffffff00000001000000000000000000000001000000000000000000000000',
      'hex',
    ),
  ],
  'P-384': [
    Buffer.from(
      '04' +
        'fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff000000000000000100000001' +
        '8cdeadbbd04911a3c1931e26df3fa6439dca9c7eb286fbd46fc319f0e2bb780232baf57825fc0c1912ada2fefe84024c',
      'hex',
    ),
    Buffer.from(
      '04' +
        '2261b2bf605c22f2f3aef6338719b2c486388ad5240719a5257315969ef01ba27f0a104c89704773a81fdabee6ab5c78' +
        'fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff000000000000000100000000',
      'hex',
    ),
  ],
};

function refuses(candidate: RawImport, curve: EcCurve, point: Buffer): boolean {
  try {
    candidate(curve, point);
    return false;
  } catch (err) {
    return err instanceof EcPointError;
  }
}

function uncompressedPoint(key: KeyObject, curve: EcCurve): Buffer {
  const spki = key.export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - (1 + 2 * COORDINATE_BYTES[curve]));
}

/** True when `candidate` imports every curve's keys exactly as node's public import does. */
function provesItself(candidate: RawImport): boolean {
  const message = Buffer.from('rampart ec point import self-check');
  for (const curve of ['P-256', 'P-384'] as const) {
    const pair = generateKeyPairSync('ec', { namedCurve: OPENSSL_CURVE[curve] });
    const point = uncompressedPoint(pair.publicKey, curve);
    const imported = candidate(curve, point);
    if (imported.type !== 'public' || imported.asymmetricKeyType !== 'ec' || !imported.equals(pair.publicKey)) return false;
    if (!verify('sha256', message, imported, sign('sha256', message, pair.privateKey))) return false;
    const offCurve = Buffer.from(point);
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
    // Some libraries read (0, 0) as the point at infinity rather than refusing it.
    const allZero = Buffer.concat([Buffer.from([4]), Buffer.alloc(2 * COORDINATE_BYTES[curve])]);
    for (const refused of [offCurve, allZero, ...NON_CANONICAL_POINTS[curve]]) {
      if (!refuses(candidate, curve, refused)) return false;
    }
  }
  return true;
}

export interface EcPointImport {
  readonly importPoint: RawImport;
  readonly route: 'node-raw' | 'jwk';
}

/** The candidate raw import if it proves itself, else the JWK import (exported for tests). */
export function pickEcPointImport(findCandidate: () => RawImport | null): EcPointImport {
  try {
    const raw = findCandidate();
    if (raw !== null && provesItself(raw)) return { importPoint: raw, route: 'node-raw' };
  } catch {
    // A candidate that throws anything but EcPointError has not proved itself either.
  }
  return { importPoint: importEcPointByJwk, route: 'jwk' };
}

let chosen: EcPointImport | undefined;
let chosenForVerify: EcPointImport | undefined;

/**
 * A public KeyObject for an uncompressed point (0x04 || X || Y) of the curve's size, which the
 * caller has checked. Throws EcPointError when the point is not on the curve.
 */
export function importEcPoint(curve: EcCurve, point: Buffer): KeyObject {
  chosen ??= pickEcPointImport(findNodeRawImport);
  return chosen.importPoint(curve, point);
}

/**
 * Whether `signature` (DER ECDSA-Sig-Value) over `data` verifies with the key at `point`, a key
 * the caller will not use again. Throws EcPointError when the point is not on the curve.
 *
 * Every certificate request carries such a key. node's one-shot `verify` runs as a job object
 * that holds its key until the garbage collector finalises the job, and for a key seen once that
 * finalising frees OpenSSL's key structures: about 10 µs a key, thousands at once inside a pause
 * (in an e2e CA worker, 5-13 ms of each scavenge and 71 ms of one mark-compact, from
 * --trace-gc-nvp's heap.external.weak_global_handles). So the key goes into one KeyObject per
 * curve that the next request overwrites, which frees the old key there and then, and the check
 * runs through a Verify object, which holds only its digest state. The key lives only inside
 * this call, so the reuse never shows.
 */
export function verifyWithEcPoint(curve: EcCurve, point: Buffer, hash: string, data: Buffer, signature: Buffer): boolean {
  chosenForVerify ??= pickEcPointImport(findNodeReusedImport);
  const key = chosenForVerify.importPoint(curve, point);
  try {
    return createVerify(hash).update(data).verify(key, signature);
  } catch {
    // A signature OpenSSL cannot parse at all is as bad as one that does not verify.
    return false;
  }
}

/** Which import the CSR check (`verifyWithEcPoint`) uses on this node: its own raw import, or the JWK fallback. */
export function ecPointImportRoute(): 'node-raw' | 'jwk' {
  chosenForVerify ??= pickEcPointImport(findNodeReusedImport);
  return chosenForVerify.route;
}
