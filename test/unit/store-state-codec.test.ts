import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { CaState, RootRecord } from '../../src/core/ports.js';
import { StateError } from '../../src/core/errors.js';
import { decodeState, encodeState } from '../../src/store/state-codec.js';

function pem(label: string, bytes = 120): string {
  const b64 = randomBytes(bytes).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

const KEY_MARKER = pem('EC PRIVATE KEY');

function root(generation: number, phase: RootRecord['phase'], extra: Partial<RootRecord> = {}): RootRecord {
  return {
    fingerprint: randomBytes(32).toString('hex'),
    generation,
    phase,
    certPem: pem('CERTIFICATE'),
    keyPem: generation === 1 ? KEY_MARKER : pem('PRIVATE KEY'),
    notBefore: 1_000,
    notAfter: 2_000_000,
    plugged: false,
    addedAtSequence: generation,
    preparedAt: 1_000,
    intermediate: { certPem: pem('CERTIFICATE'), keyPem: pem('PRIVATE KEY'), notBefore: 1_000, notAfter: 900_000, chainPems: [] },
    ...extra,
  };
}

function sample(): CaState {
  return {
    schemaVersion: 1,
    trustDomain: 'cluster.local',
    sequence: 2,
    nextGeneration: 3,
    roots: [root(1, 'retiring', { activatedAt: 1_500, signingEndedAt: 5_000, maxLeafTtlMs: 86_400_000 }), root(2, 'active', { activatedAt: 5_000 })],
    updatedAt: 5_000,
  };
}

/** Re-encodes `state` after `mutate` tampers with its JSON form, bypassing the type system. */
function tampered(mutate: (o: any) => void): string {
  const o = JSON.parse(encodeState(sample()));
  mutate(o);
  return JSON.stringify(o);
}

function assertCorrupt(text: string, field: string): void {
  assert.throws(
    () => decodeState(text),
    (error: unknown) => {
      assert.ok(error instanceof StateError, `expected StateError, got ${String(error)}`);
      assert.equal(error.code, 'RAMPART_ERR_STATE_CORRUPT');
      assert.ok(error.message.includes(field), `message "${error.message}" should name ${field}`);
      assert.ok(!error.message.includes('PRIVATE KEY') && !error.message.includes('-----'), `message for ${field} must not echo PEM text`);
      assert.ok(!error.message.includes(KEY_MARKER.slice(40, 80)), 'message must not echo key material');
      return true;
    },
  );
}

test('round trip preserves every field', () => {
  const state = sample();
  const decoded = decodeState(encodeState(state));
  assert.deepEqual(decoded, state);
  assert.equal(encodeState(decoded), encodeState(state));
});

test('an empty state without a bundle is valid; a plugged root may have no key', () => {
  const empty: CaState = { schemaVersion: 1, trustDomain: 'example.org', sequence: 0, nextGeneration: 1, roots: [], updatedAt: 0 };
  assert.deepEqual(decodeState(encodeState(empty)), empty);
  const plugged: CaState = { ...empty, sequence: 1, nextGeneration: 2, roots: [root(1, 'active', { keyPem: null, plugged: true, addedAtSequence: 1 })] };
  assert.deepEqual(decodeState(encodeState(plugged)), plugged);
});

test('unknown fields are dropped', () => {
  const decoded = decodeState(tampered((o) => (o.extra = 'x')));
  assert.equal('extra' in decoded, false);
});

test('invalid JSON is a coded error that does not echo the text', () => {
  const text = `{"schemaVersion":1, "roots":[{"keyPem":"${KEY_MARKER.replace(/\n/g, '\\n')}"`;
  assertCorrupt(text, 'JSON');
  assertCorrupt('', 'JSON');
  assertCorrupt('[]', '(root)');
  assertCorrupt('null', '(root)');
});

test('each bad field is named', () => {
  const cases: Array<[string, (o: any) => void]> = [
    ['schemaVersion', (o) => (o.schemaVersion = 2)],
    ['trustDomain', (o) => (o.trustDomain = 'Bad Domain')],
    ['trustDomain', (o) => delete o.trustDomain],
    ['sequence', (o) => (o.sequence = -1)],
    ['sequence', (o) => (o.sequence = 1.5)],
    ['sequence', (o) => (o.sequence = '2')],
    ['nextGeneration', (o) => delete o.nextGeneration],
    ['updatedAt', (o) => (o.updatedAt = null)],
    ['roots', (o) => (o.roots = {})],
    ['roots[0].fingerprint', (o) => (o.roots[0].fingerprint = 'AB:CD')],
    ['roots[1].phase', (o) => (o.roots[1].phase = 'signing')],
    ['roots[0].generation', (o) => (o.roots[0].generation = -3)],
    ['roots[0].certPem', (o) => (o.roots[0].certPem = 'not pem')],
    ['roots[0].certPem', (o) => (o.roots[0].certPem = o.roots[0].certPem + o.roots[1].certPem)],
    ['roots[0].certPem', (o) => (o.roots[0].certPem = o.roots[0].keyPem)],
    ['roots[0].keyPem', (o) => (o.roots[0].keyPem = o.roots[0].certPem)],
    ['roots[0].keyPem', (o) => (o.roots[0].keyPem = 42)],
    ['roots[0].notAfter', (o) => (o.roots[0].notAfter = o.roots[0].notBefore)],
    ['roots[0].plugged', (o) => (o.roots[0].plugged = 'no')],
    ['roots[0].addedAtSequence', (o) => delete o.roots[0].addedAtSequence],
    ['roots[0].preparedAt', (o) => (o.roots[0].preparedAt = 'yesterday')],
    ['roots[0].activatedAt', (o) => (o.roots[0].activatedAt = -1)],
    ['roots[0].signingEndedAt', (o) => (o.roots[0].signingEndedAt = 'x')],
    ['roots[0].maxLeafTtlMs', (o) => (o.roots[0].maxLeafTtlMs = 1.5)],
    ['roots[0].intermediate', (o) => (o.roots[0].intermediate = null)],
    ['roots[0].intermediate.keyPem', (o) => (o.roots[0].intermediate.keyPem = '')],
    ['roots[0].intermediate.certPem', (o) => delete o.roots[0].intermediate.certPem],
    ['roots[0].intermediate.notAfter', (o) => (o.roots[0].intermediate.notAfter = 0)],
    ['roots[0].intermediate.chainPems', (o) => (o.roots[0].intermediate.chainPems = 'x')],
    ['roots[0].intermediate.chainPems[0]', (o) => (o.roots[0].intermediate.chainPems = ['garbage'])],
  ];
  for (const [field, mutate] of cases) assertCorrupt(tampered(mutate), field);
});

test('schemaVersion: a missing one is no Rampart state, a newer one is not damage and must not be removed', () => {
  assertCorrupt(tampered((o) => delete o.schemaVersion), 'schemaVersion is missing');
  assertCorrupt(tampered((o) => (o.schemaVersion = 0)), 'schemaVersion is not 1');
  assert.throws(
    () => decodeState(tampered((o) => (o.schemaVersion = 2))),
    (error: unknown) => error instanceof StateError && error.code === 'RAMPART_ERR_STATE_CORRUPT' && /schemaVersion 2: a newer Rampart version wrote it/.test(error.message) && /do not remove/.test(error.message) && !/remove it to start a new CA/.test(error.message),
  );
});

test('invariants: one active root, non-empty published bundle, unique roots, generations and sequence', () => {
  assertCorrupt(tampered((o) => (o.roots[0].phase = 'active')), 'active');
  assertCorrupt(tampered((o) => (o.roots = [])), 'roots');
  assertCorrupt(tampered((o) => (o.roots[1].fingerprint = o.roots[0].fingerprint)), 'roots[1].fingerprint');
  assertCorrupt(tampered((o) => (o.roots[1].generation = 1)), 'roots[1].generation');
  assertCorrupt(tampered((o) => (o.nextGeneration = 2)), 'nextGeneration');
  assertCorrupt(tampered((o) => (o.roots[1].addedAtSequence = 3)), 'roots[1].addedAtSequence');
  assertCorrupt(tampered((o) => (o.roots[1].phase = 'retiring')), 'has no active root');
  assertCorrupt(
    tampered((o) => {
      o.roots[0].phase = 'prepared';
      o.roots.push({ ...o.roots[1], fingerprint: 'a'.repeat(64), generation: 3, phase: 'prepared', addedAtSequence: 2 });
      o.nextGeneration = 4;
    }),
    'more than one prepared root',
  );
});

test('encodeState refuses to serialize an invalid state', () => {
  const bad = { ...sample(), sequence: -1 } as CaState;
  assert.throws(() => encodeState(bad), { code: 'RAMPART_ERR_STATE_CORRUPT' });
});

test('times and the leaf TTL ceiling stay within what a Date and an X.509 time can hold (fuzz finding)', () => {
  // Seeded state campaign (seed 0x57a7e): a notAfter of 9e15 decoded, and the CA then died in
  // start-up on new Date(9e15).toISOString() with an uncoded RangeError (so did status and prepare).
  const last = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
  for (const [field, mutate] of [
    ['roots[0].notAfter', (o: any) => (o.roots[0].notAfter = 9e15)],
    ['roots[1].intermediate.notAfter', (o: any) => (o.roots[1].intermediate.notAfter = Number.MAX_SAFE_INTEGER)],
    ['roots[1].preparedAt', (o: any) => (o.roots[1].preparedAt = 8.64e15 + 1)],
    ['roots[0].signingEndedAt', (o: any) => (o.roots[0].signingEndedAt = last + 1)],
    ['roots[0].maxLeafTtlMs', (o: any) => (o.roots[0].maxLeafTtlMs = 2 ** 53 - 1)],
    ['updatedAt', (o: any) => (o.updatedAt = 1e16)],
  ] as const) {
    assertCorrupt(tampered(mutate), field);
  }
  const latest = decodeState(tampered((o) => (o.roots[1].notAfter = last)));
  assert.equal(new Date(latest.roots[1]?.notAfter ?? 0).toISOString(), '9999-12-31T23:59:59.999Z');
});
