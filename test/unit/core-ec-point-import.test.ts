/**
 * The EC point import behind every CSR's key: node's own raw import where it proves itself, JWK
 * otherwise. Both routes must give the same key for every valid point and refuse every point
 * that is not one, so a CA on a node where the fast route is gone behaves the same, only slower.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { test } from 'node:test';
import { EcPointError, NON_CANONICAL_POINTS, ecPointImportRoute, importEcPoint, importEcPointByJwk, pickEcPointImport, verifyWithEcPoint, type EcCurve, type RawImport } from '../../src/core/pki/ec-point-import.js';

const CURVES: Record<EcCurve, { openssl: string; size: number; p: bigint; b: bigint }> = {
  'P-256': {
    openssl: 'prime256v1',
    size: 32,
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  },
  'P-384': {
    openssl: 'secp384r1',
    size: 48,
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  },
};

const ROUTES: ReadonlyArray<[string, (curve: EcCurve, point: Buffer) => KeyObject]> = [
  ['importEcPoint', importEcPoint],
  ['importEcPointByJwk', importEcPointByJwk],
];

function pointOf(key: KeyObject, curve: EcCurve): Buffer {
  const spki = key.export({ format: 'der', type: 'spki' });
  return spki.subarray(spki.length - (1 + 2 * CURVES[curve].size));
}

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
  }
  return result;
}

function bytes(value: bigint, size: number): Buffer {
  return Buffer.from(value.toString(16).padStart(size * 2, '0'), 'hex');
}

/**
 * A point on the curve with a small x, written with x + p in place of x: the same point to
 * modular arithmetic, but not a canonical encoding, which RFC 5480 / SEC 1 forbid.
 */
function nonCanonicalPoint(curve: EcCurve): Buffer {
  const { p, b, size } = CURVES[curve];
  for (let x = 1n; ; x++) {
    const rhs = (((x * x * x - 3n * x + b) % p) + p) % p;
    const y = modPow(rhs, (p + 1n) / 4n, p); // both primes are 3 mod 4
    if ((y * y) % p !== rhs) continue;
    return Buffer.concat([Buffer.from([4]), bytes(x + p, size), bytes(y, size)]);
  }
}

/** The self-check's y + p vector: y = 1, x found offline (a cube root, not a square root). */
const Y_PLUS_P_POINT: Record<EcCurve, Buffer> = { 'P-256': NON_CANONICAL_POINTS['P-256'][1]!, 'P-384': NON_CANONICAL_POINTS['P-384'][1]! };

function reduced(curve: EcCurve, point: Buffer): Buffer {
  const { p, size } = CURVES[curve];
  const x = BigInt(`0x${point.subarray(1, 1 + size).toString('hex')}`) % p;
  const y = BigInt(`0x${point.subarray(1 + size).toString('hex')}`) % p;
  return Buffer.concat([Buffer.from([4]), bytes(x, size), bytes(y, size)]);
}

test('on node 20 the CA takes node\'s raw import, not the JWK fallback', { skip: process.versions.node.split('.')[0] !== '20' }, () => {
  assert.equal(ecPointImportRoute(), 'node-raw');
});

for (const [name, importPoint] of ROUTES) {
  for (const curve of ['P-256', 'P-384'] as const) {
    test(`${name} ${curve}: the key equals the one the point came from and verifies its signatures`, () => {
      for (let i = 0; i < 20; i++) {
        const pair = generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl });
        const imported = importPoint(curve, pointOf(pair.publicKey, curve));
        assert.equal(imported.type, 'public');
        assert.deepEqual(imported.asymmetricKeyDetails, { namedCurve: CURVES[curve].openssl });
        assert.ok(imported.equals(pair.publicKey));
        assert.deepEqual(imported.export({ format: 'jwk' }), pair.publicKey.export({ format: 'jwk' }));
        const message = Buffer.from(`message ${i}`);
        assert.equal(verify('sha256', message, imported, sign('sha256', message, pair.privateKey)), true);
        assert.equal(verify('sha256', Buffer.from('another message'), imported, sign('sha256', message, pair.privateKey)), false);
      }
    });

    test(`${name} ${curve}: points that are not points of the curve are refused`, () => {
      const point = pointOf(generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl }).publicKey, curve);
      const offCurve = Buffer.from(point);
      offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
      const size = CURVES[curve].size;
      const refused: Array<[string, Buffer]> = [
        ['off the curve', offCurve],
        ['all-zero coordinates', Buffer.concat([Buffer.from([4]), Buffer.alloc(2 * size)])],
        ['x + p instead of x', nonCanonicalPoint(curve)],
        ['y + p instead of y', Y_PLUS_P_POINT[curve]],
        ['the point at infinity', Buffer.from([0])],
        ['compressed', Buffer.concat([Buffer.from([2 + ((point[point.length - 1] as number) & 1)]), point.subarray(1, 1 + size)])],
        ['hybrid', Buffer.concat([Buffer.from([6 + ((point[point.length - 1] as number) & 1)]), point.subarray(1)])],
        ['one byte short', point.subarray(0, point.length - 1)],
        ['the other curve\'s size', Buffer.concat([Buffer.from([4]), Buffer.alloc(2 * (size === 32 ? 48 : 32), 1)])],
      ];
      for (const [what, candidate] of refused) {
        assert.throws(() => importPoint(curve, candidate), EcPointError, `${what} was taken`);
      }
    });
  }
}

test('the non-canonical points of the test are points of the curve once reduced, which are taken', () => {
  for (const curve of ['P-256', 'P-384'] as const) {
    const { p, size } = CURVES[curve];
    assert.equal(BigInt(`0x${Y_PLUS_P_POINT[curve].subarray(1 + size).toString('hex')}`), p + 1n);
    // The self-check's x + p vector is the one this test derives on its own.
    assert.deepEqual(NON_CANONICAL_POINTS[curve][0], nonCanonicalPoint(curve));
    assert.equal(NON_CANONICAL_POINTS[curve].length, 2);
    for (const nonCanonical of [nonCanonicalPoint(curve), Y_PLUS_P_POINT[curve]]) {
      const canonical = reduced(curve, nonCanonical);
      assert.notDeepEqual(canonical, nonCanonical);
      const key = importEcPointByJwk(curve, canonical);
      assert.ok(importEcPoint(curve, canonical).equals(key));
    }
  }
});

test('a raw import that has not proved itself is not taken', () => {
  const takesAnything: RawImport = (curve, point) => {
    try {
      return importEcPointByJwk(curve, point);
    } catch {
      return generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl }).publicKey;
    }
  };
  const wrongKey: RawImport = (curve) => generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl }).publicKey;
  const wrongError: RawImport = (curve, point) => {
    try {
      return importEcPointByJwk(curve, point);
    } catch {
      throw new TypeError('not an EcPointError');
    }
  };
  // Each lax import below is wrong in one way only, so each vector of the self-check is needed.
  const takesNonCanonicalX: RawImport = (curve, point) =>
    importEcPointByJwk(curve, point.equals(nonCanonicalPoint(curve)) ? reduced(curve, point) : point);
  const takesNonCanonicalY: RawImport = (curve, point) =>
    importEcPointByJwk(curve, point.equals(Y_PLUS_P_POINT[curve]) ? reduced(curve, point) : point);
  const takesAllZero: RawImport = (curve, point) =>
    point.subarray(1).every((byte) => byte === 0) ? generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl }).publicKey : importEcPointByJwk(curve, point);
  const p256Only: RawImport = (curve, point) => {
    if (curve !== 'P-256') throw new TypeError('no P-384');
    return importEcPointByJwk(curve, point);
  };
  for (const [what, candidate] of [
    ['none', () => null],
    ['a finder that throws', () => { throw new Error('no internals'); }],
    ['takes off-curve points', () => takesAnything],
    ['returns another key', () => wrongKey],
    ['refuses with another error', () => wrongError],
    ['takes x + p for x', () => takesNonCanonicalX],
    ['takes y + p for y', () => takesNonCanonicalY],
    ['takes all-zero coordinates', () => takesAllZero],
    ['only P-256', () => p256Only],
  ] as Array<[string, () => RawImport | null]>) {
    const picked = pickEcPointImport(candidate);
    assert.equal(picked.route, 'jwk', what);
    assert.equal(picked.importPoint, importEcPointByJwk, what);
  }
  assert.equal(pickEcPointImport(() => importEcPointByJwk).route, 'node-raw', 'a candidate that behaves is taken');
});

for (const curve of ['P-256', 'P-384'] as const) {
  test(`verifyWithEcPoint ${curve}: each call checks with its own point, never with a key an earlier call left behind`, () => {
    const other: EcCurve = curve === 'P-256' ? 'P-384' : 'P-256';
    const a = generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl });
    const b = generateKeyPairSync('ec', { namedCurve: CURVES[curve].openssl });
    const c = generateKeyPairSync('ec', { namedCurve: CURVES[other].openssl });
    const message = Buffer.from('certificationRequestInfo');
    const byA = sign('sha256', message, a.privateKey);
    const byB = sign('sha256', message, b.privateKey);
    const check = (point: Buffer, signature: Buffer, on: EcCurve = curve, data = message): boolean => verifyWithEcPoint(on, point, 'sha256', data, signature);
    const pointA = pointOf(a.publicKey, curve);
    const pointB = pointOf(b.publicKey, curve);

    assert.equal(check(pointA, byA), true);
    assert.equal(check(pointB, byA), false, "B's key took A's signature");
    assert.equal(check(pointB, byB), true);
    assert.equal(check(pointA, byB), false, "A's key took B's signature");
    assert.equal(check(pointA, byA, curve, Buffer.from('another request')), false);
    assert.equal(check(pointA, Buffer.from('not a DER signature')), false);
    assert.equal(check(pointA, Buffer.alloc(0)), false);

    // A refused point leaves the previous key in the reused slot: the call must still refuse,
    // never answer with that key.
    const offCurve = Buffer.from(pointA);
    offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] as number) ^ 1;
    for (const [what, refused] of [
      ['off the curve', offCurve],
      ['all-zero coordinates', Buffer.concat([Buffer.from([4]), Buffer.alloc(2 * CURVES[curve].size)])],
      ['x + p instead of x', nonCanonicalPoint(curve)],
      ['y + p instead of y', Y_PLUS_P_POINT[curve]],
      ['one byte short', pointA.subarray(0, pointA.length - 1)],
    ] as Array<[string, Buffer]>) {
      assert.equal(check(pointA, byA), true);
      assert.throws(() => check(refused, byA), EcPointError, `${what} was taken`);
    }

    // The other curve has its own slot; a call on it in between changes nothing here.
    assert.equal(check(pointOf(c.publicKey, other), sign('sha256', message, c.privateKey), other), true);
    assert.equal(check(pointB, byB), true);
    assert.equal(check(pointB, byA), false);
  });
}
