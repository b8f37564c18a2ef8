/**
 * The persisted form of {@link CaState}, shared by the file store and the Kubernetes Secret
 * store. Decoding validates every field and the cross-field invariants, so a hand-edited or
 * half-migrated state fails loudly at startup instead of mid-rotation. Error messages name the
 * offending field but never echo values: the state holds private keys.
 */
import { StateError } from '../core/errors.js';
import { validateTrustDomain } from '../core/identity.js';
import type { CaState, IntermediateRecord, RootPhase, RootRecord } from '../core/ports.js';

/** The schema version this build reads and writes. */
export const STATE_SCHEMA_VERSION = 1;
const PHASES: readonly RootPhase[] = ['prepared', 'active', 'retiring'];
const FINGERPRINT = /^[0-9a-f]{64}$/;
const CERT_PEM = /^\s*(-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*)$/;
const KEY_PEM = /^\s*-----BEGIN ((?:EC |RSA |ENCRYPTED )?PRIVATE KEY)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----\s*$/;

function corrupt(field: string, why: string): StateError {
  return new StateError('RAMPART_ERR_STATE_CORRUPT', `CA state field ${field} ${why}; restore the state from a backup or remove it to start a new CA`);
}

type Obj = Record<string, unknown>;

function object(value: unknown, field: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corrupt(field, 'is not an object');
  return value as Obj;
}

function array(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw corrupt(field, 'is not an array');
  return value;
}

function count(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw corrupt(field, 'is not a non-negative integer');
  return value;
}

/**
 * The last millisecond an X.509 time can name (GeneralizedTime has four year digits). Every time
 * and duration in the state stays at or below it, so that it, and the sum of any two of them, is
 * a time a JavaScript Date can hold: new Date(9e15).toISOString() throws a RangeError, which
 * took down the CA's start-up, /v1/admin/status and rotation steps.
 */
const MAX_TIME_MS = 253_402_300_799_999;

/** Millisecond timestamps: integers, so a float or a seconds/ms mix-up is caught here. */
function time(value: unknown, field: string): number {
  const ms = count(value, field);
  if (ms > MAX_TIME_MS) throw corrupt(field, 'is a time after the year 9999');
  return ms;
}

function optionalTime(value: unknown, field: string): number | undefined {
  return value === undefined ? undefined : time(value, field);
}

function bool(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw corrupt(field, 'is not a boolean');
  return value;
}

function certPem(value: unknown, field: string): string {
  if (typeof value !== 'string') throw corrupt(field, 'is not a string');
  const blocks = value.match(/-----BEGIN /g)?.length ?? 0;
  if (blocks !== 1 || !CERT_PEM.test(value)) throw corrupt(field, 'is not a single PEM CERTIFICATE block');
  return value;
}

function keyPem(value: unknown, field: string): string {
  if (typeof value !== 'string') throw corrupt(field, 'is not a string');
  const blocks = value.match(/-----BEGIN /g)?.length ?? 0;
  if (blocks !== 1 || !KEY_PEM.test(value)) throw corrupt(field, 'is not a single PEM private-key block');
  return value;
}

function validity(notBefore: number, notAfter: number, field: string): void {
  if (notAfter <= notBefore) throw corrupt(`${field}.notAfter`, 'is not after notBefore');
}

function decodeIntermediate(value: unknown, field: string): IntermediateRecord {
  const o = object(value, field);
  const notBefore = time(o['notBefore'], `${field}.notBefore`);
  const notAfter = time(o['notAfter'], `${field}.notAfter`);
  validity(notBefore, notAfter, field);
  return {
    certPem: certPem(o['certPem'], `${field}.certPem`),
    keyPem: keyPem(o['keyPem'], `${field}.keyPem`),
    notBefore,
    notAfter,
    chainPems: array(o['chainPems'], `${field}.chainPems`).map((pem, i) => certPem(pem, `${field}.chainPems[${i}]`)),
  };
}

function decodeRoot(value: unknown, field: string): RootRecord {
  const o = object(value, field);
  const fingerprint = o['fingerprint'];
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) {
    throw corrupt(`${field}.fingerprint`, 'is not a lowercase hex SHA-256');
  }
  const phase = o['phase'];
  if (typeof phase !== 'string' || !(PHASES as readonly string[]).includes(phase)) {
    throw corrupt(`${field}.phase`, `is not one of ${PHASES.join(', ')}`);
  }
  const notBefore = time(o['notBefore'], `${field}.notBefore`);
  const notAfter = time(o['notAfter'], `${field}.notAfter`);
  validity(notBefore, notAfter, field);
  const rawKey = o['keyPem'];
  const root: { -readonly [K in keyof RootRecord]: RootRecord[K] } = {
    fingerprint,
    generation: count(o['generation'], `${field}.generation`),
    phase: phase as RootPhase,
    certPem: certPem(o['certPem'], `${field}.certPem`),
    keyPem: rawKey === null ? null : keyPem(rawKey, `${field}.keyPem`),
    notBefore,
    notAfter,
    plugged: bool(o['plugged'], `${field}.plugged`),
    addedAtSequence: count(o['addedAtSequence'], `${field}.addedAtSequence`),
    preparedAt: time(o['preparedAt'], `${field}.preparedAt`),
    intermediate: decodeIntermediate(o['intermediate'], `${field}.intermediate`),
  };
  // Optional fields are omitted rather than stored as undefined so encode(decode(x)) is stable.
  const activatedAt = optionalTime(o['activatedAt'], `${field}.activatedAt`);
  if (activatedAt !== undefined) root.activatedAt = activatedAt;
  const signingEndedAt = optionalTime(o['signingEndedAt'], `${field}.signingEndedAt`);
  if (signingEndedAt !== undefined) root.signingEndedAt = signingEndedAt;
  // A duration, added to signingEndedAt: held to the same bound.
  const maxLeafTtlMs = optionalTime(o['maxLeafTtlMs'], `${field}.maxLeafTtlMs`);
  if (maxLeafTtlMs !== undefined) root.maxLeafTtlMs = maxLeafTtlMs;
  return root;
}

/**
 * Validates an untrusted value as a {@link CaState} and returns a normalized copy holding only
 * the known fields. Throws `StateError` `RAMPART_ERR_STATE_CORRUPT` naming the first bad field.
 */
export function validateState(value: unknown): CaState {
  const o = object(value, '(root)');
  const version = o['schemaVersion'];
  if (isNewerSchemaVersion(version)) {
    // Not damage: removing it, as corrupt() advises, would throw away a newer Rampart's state.
    throw new StateError('RAMPART_ERR_STATE_CORRUPT', `CA state has schemaVersion ${version}: a newer Rampart version wrote it (this one reads ${STATE_SCHEMA_VERSION}); run that version, and do not remove the state`);
  }
  if (version === undefined) throw corrupt('schemaVersion', 'is missing (is this a Rampart CA state?)');
  if (version !== STATE_SCHEMA_VERSION) throw corrupt('schemaVersion', `is not ${STATE_SCHEMA_VERSION}`);
  const trustDomain = o['trustDomain'];
  if (typeof trustDomain !== 'string') throw corrupt('trustDomain', 'is not a string');
  try {
    validateTrustDomain(trustDomain);
  } catch {
    throw corrupt('trustDomain', 'is not a valid SPIFFE trust domain');
  }
  const sequence = count(o['sequence'], 'sequence');
  const nextGeneration = count(o['nextGeneration'], 'nextGeneration');
  const roots = array(o['roots'], 'roots').map((root, i) => decodeRoot(root, `roots[${i}]`));
  const state: CaState = { schemaVersion: 1, trustDomain, sequence, nextGeneration, roots, updatedAt: time(o['updatedAt'], 'updatedAt') };
  checkInvariants(state);
  return state;
}

function checkInvariants(state: CaState): void {
  // Once a bundle was ever published (sequence > 0) it must never become empty: agents would
  // trust nothing and every connection would fail.
  if (state.roots.length === 0 && state.sequence > 0) throw corrupt('roots', 'is empty although a trust bundle was published (sequence > 0)');
  const active = state.roots.filter((r) => r.phase === 'active');
  if (active.length > 1) throw corrupt('roots', `has ${active.length} active roots; at most one may sign`);
  // Every transition keeps one root signing; none would leave the CA unable to issue at all.
  if (active.length === 0 && state.roots.length > 0) throw corrupt('roots', 'has no active root; exactly one must sign');
  if (state.roots.filter((r) => r.phase === 'prepared').length > 1) throw corrupt('roots', 'has more than one prepared root');
  const fingerprints = new Set<string>();
  const generations = new Set<number>();
  state.roots.forEach((root, i) => {
    if (fingerprints.has(root.fingerprint)) throw corrupt(`roots[${i}].fingerprint`, 'repeats another root');
    fingerprints.add(root.fingerprint);
    if (generations.has(root.generation)) throw corrupt(`roots[${i}].generation`, 'repeats another root');
    generations.add(root.generation);
    // Successive roots must never share a subject name, which embeds the generation.
    if (root.generation >= state.nextGeneration) throw corrupt('nextGeneration', `is not above roots[${i}].generation`);
    if (root.addedAtSequence > state.sequence) throw corrupt(`roots[${i}].addedAtSequence`, 'is above the bundle sequence');
  });
}

/** Serializes state for storage after validating it, so an invalid state is never persisted. */
export function encodeState(state: CaState): string {
  return `${JSON.stringify(validateState(state), null, 2)}\n`;
}

/**
 * Parses and validates stored state text. Throws `StateError` `RAMPART_ERR_STATE_CORRUPT`;
 * the JSON parser's own message is withheld because it can quote the surrounding key text.
 */
function isNewerSchemaVersion(version: unknown): version is number {
  return typeof version === 'number' && version > STATE_SCHEMA_VERSION;
}

/**
 * Whether undecodable state text says it was written by a newer Rampart (a higher
 * `schemaVersion`), as during a rolling upgrade: such a state must not be overwritten with ours.
 */
export function declaresNewerSchema(text: string): boolean {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null) return false;
    return isNewerSchemaVersion((parsed as Record<string, unknown>)['schemaVersion']);
  } catch {
    return false;
  }
}

export function decodeState(text: string): CaState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StateError('RAMPART_ERR_STATE_CORRUPT', 'CA state is not valid JSON (truncated or hand-edited?); restore the state from a backup or remove it to start a new CA');
  }
  return validateState(parsed);
}
