/** The minimal DER reader/writer of core/pki/der.ts, on hand-built bytes and known encodings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  DerError,
  decodeOid,
  decodeTime,
  encodeLength,
  encodeOid,
  encodeTime,
  timeSize,
  writeTime,
  expectTag,
  headerSize,
  readChildren,
  readTlv,
  readWhole,
  seq,
  smallInteger,
  TAG,
  tlv,
  unsignedInteger,
  writeHeader,
  content,
} from '../../src/core/pki/der.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ''), 'hex');

function assertDerError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof DerError && message.test(err.message));
}

test('readTlv: short and long lengths', () => {
  assert.deepEqual(readTlv(bytes('04 03 aabbcc'), 0), { tag: 0x04, start: 0, contentStart: 2, end: 5 });
  const long = Buffer.concat([bytes('04 81 80'), Buffer.alloc(0x80, 1)]);
  assert.deepEqual(readTlv(long, 0), { tag: 0x04, start: 0, contentStart: 3, end: 3 + 0x80 });
  const longer = Buffer.concat([bytes('30 82 0100'), Buffer.alloc(0x100)]);
  assert.deepEqual(readTlv(longer, 0), { tag: 0x30, start: 0, contentStart: 4, end: 4 + 0x100 });
});

test('readTlv refuses truncated, indefinite, non-minimal, oversized and multi-byte-tag encodings', () => {
  assertDerError(() => readTlv(bytes('04'), 0), /truncated TLV header/);
  assertDerError(() => readTlv(bytes('04 05 aabb'), 0), /runs past its container/);
  assertDerError(() => readTlv(bytes('04 80 0000'), 0), /unsupported length encoding/);
  assertDerError(() => readTlv(bytes('04 85 0000000001 00'), 0), /unsupported length encoding/);
  assertDerError(() => readTlv(bytes('04 82 00'), 0), /truncated length/);
  assertDerError(() => readTlv(bytes('04 81 05 0102030405'), 0), /non-minimal length/);
  assertDerError(() => readTlv(Buffer.concat([bytes('04 82 0081'), Buffer.alloc(0x81)]), 0), /non-minimal length/);
  assertDerError(() => readTlv(bytes('1f 81 01 00'), 0), /multi-byte tags/);
  // A child may not run past its parent even when the buffer is longer.
  const buf = bytes('30 03 04 05 aa bb cc dd ee');
  assertDerError(() => readChildren(buf, readTlv(buf, 0)), /runs past its container/);
});

test('readWhole, readChildren and expectTag', () => {
  const buf = bytes('30 06 02 01 05 04 01 ff');
  const top = readWhole(buf, TAG.SEQUENCE);
  const kids = readChildren(buf, top);
  assert.equal(kids.length, 2);
  assert.equal(hex(content(buf, expectTag(kids[0], TAG.INTEGER, 'n'))), '05');
  assert.equal(hex(content(buf, expectTag(kids[1], TAG.OCTET_STRING, 'o'))), 'ff');
  assertDerError(() => expectTag(kids[1], TAG.INTEGER, 'the version'), /the version has tag 0x4, expected 0x2/);
  assertDerError(() => expectTag(undefined, TAG.INTEGER, 'the version'), /the version is missing/);
  assertDerError(() => readWhole(Buffer.concat([buf, bytes('00')]), TAG.SEQUENCE), /trailing bytes/);
  assertDerError(() => readWhole(buf, TAG.SET), /expected tag 0x31, found 0x30/);
});

test('OIDs: known encodings and round trips', () => {
  assert.equal(hex(encodeOid('1.2.840.10045.2.1')), '06072a8648ce3d0201');
  assert.equal(hex(encodeOid('2.5.29.17')), '0603551d11');
  assert.equal(hex(encodeOid('1.2.840.10045.3.1.7')), '06082a8648ce3d030107');
  for (const oid of ['1.2.840.113549.1.1.11', '1.3.6.1.5.5.7.3.2', '2.999.3', '0.9.2342.19200300.100.1.1', '1.3.6.1.4.1.311.21.20']) {
    const der = encodeOid(oid);
    assert.equal(der[0], TAG.OID);
    assert.equal(decodeOid(der.subarray(2)), oid);
  }
  assertDerError(() => decodeOid(Buffer.alloc(0)), /empty OID/);
  assertDerError(() => decodeOid(bytes('2a 86')), /truncated OID/);
  assertDerError(() => encodeOid('1'), /bad OID/);
});

test('lengths: encodeLength, headerSize and writeHeader agree at every boundary', () => {
  for (const [n, expected] of [[0, '00'], [127, '7f'], [128, '8180'], [255, '81ff'], [256, '820100'], [65535, '82ffff'], [65536, '83010000']] as const) {
    assert.equal(hex(encodeLength(n)), expected, String(n));
    assert.equal(headerSize(n), 1 + expected.length / 2);
    const out = Buffer.alloc(headerSize(n));
    assert.equal(writeHeader(out, 0, 0x30, n), headerSize(n));
    assert.equal(hex(out), `30${expected}`);
    // What the writer produces the reader accepts.
    const whole = Buffer.concat([out, Buffer.alloc(n)]);
    assert.deepEqual(readWhole(whole, 0x30), { tag: 0x30, start: 0, contentStart: out.length, end: whole.length });
  }
  assertDerError(() => encodeLength(0x1000000), /too long/);
  assert.equal(hex(tlv(TAG.SEQUENCE, bytes('0500'), bytes('0500'))), '300405000500');
  assert.equal(hex(seq()), '3000');
});

test('integers: minimal, positive two-complement encoding', () => {
  assert.equal(hex(unsignedInteger(bytes('80'))), '02020080');
  assert.equal(hex(unsignedInteger(bytes('000001'))), '020101');
  assert.equal(hex(unsignedInteger(bytes('00'))), '020100');
  assert.equal(hex(unsignedInteger(bytes('0000ff'))), '020200ff');
  assert.equal(hex(smallInteger(0)), '020100');
  assert.equal(hex(smallInteger(127)), '02017f');
  assert.equal(hex(smallInteger(128)), '02020080');
  assert.equal(hex(smallInteger(65536)), '0203010000');
  assertDerError(() => smallInteger(-1), /out of range/);
  assertDerError(() => smallInteger(1.5), /out of range/);
});

test('times: UTCTime through 2049, GeneralizedTime from 2050 and before 1950, whole seconds', () => {
  const t2049 = Date.UTC(2049, 11, 31, 23, 59, 59, 999);
  const utc = encodeTime(t2049);
  assert.equal(utc[0], TAG.UTC_TIME);
  assert.equal(utc.subarray(2).toString('ascii'), '491231235959Z');
  assert.equal(decodeTime(utc, readTlv(utc, 0)), Date.UTC(2049, 11, 31, 23, 59, 59));
  const gen = encodeTime(Date.UTC(2050, 0, 1));
  assert.equal(gen[0], TAG.GENERALIZED_TIME);
  assert.equal(gen.subarray(2).toString('ascii'), '20500101000000Z');
  assert.equal(decodeTime(gen, readTlv(gen, 0)), Date.UTC(2050, 0, 1));
  const old = encodeTime(Date.UTC(1949, 5, 1));
  assert.equal(old[0], TAG.GENERALIZED_TIME);
  const y1950 = tlv(TAG.UTC_TIME, Buffer.from('500101000000Z'));
  assert.equal(decodeTime(y1950, readTlv(y1950, 0)), Date.UTC(1950, 0, 1));
  for (const bad of [tlv(TAG.UTC_TIME, Buffer.from('5001010000Z')), tlv(TAG.UTC_TIME, Buffer.from('500101000000+0100')), tlv(TAG.GENERALIZED_TIME, Buffer.from('20500101000000.5Z'))]) {
    assertDerError(() => decodeTime(bad, readTlv(bad, 0)), /bad (UTCTime|GeneralizedTime)/);
  }
  const notTime = bytes('0400');
  assertDerError(() => decodeTime(notTime, readTlv(notTime, 0)), /expected a time value/);
});

test('times written digit by digit match an independent formatting and read back, at random instants from 1900 to 2200', () => {
  let seed = 0x2545f491;
  const next = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const from = Date.UTC(1900, 0, 1);
  const to = Date.UTC(2200, 0, 1);
  const instants = [Date.UTC(1949, 11, 31, 23, 59, 59, 999), Date.UTC(1950, 0, 1), Date.UTC(2049, 11, 31, 23, 59, 59, 500), Date.UTC(2050, 0, 1), Date.UTC(2000, 1, 29, 12)];
  for (let i = 0; i < 2000; i++) instants.push(from + Math.floor(next() * (to - from)));
  for (const ms of instants) {
    // toISOString is 'YYYY-MM-DDTHH:MM:SS.sssZ'; RFC 5280 wants the two-digit year before 2050.
    const iso = new Date(ms).toISOString();
    const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
    const year = new Date(ms).getUTCFullYear();
    const utc = year >= 1950 && year < 2050;
    const der = encodeTime(ms);
    assert.equal(der.length, timeSize(ms), iso);
    assert.equal(der[0], utc ? TAG.UTC_TIME : TAG.GENERALIZED_TIME, iso);
    assert.equal(der.subarray(2).toString('latin1'), utc ? digits.slice(2) : digits, iso);
    assert.equal(decodeTime(der, readTlv(der, 0)), Math.floor(ms / 1000) * 1000, iso);
    const into = Buffer.alloc(der.length + 3, 0xee);
    assert.equal(writeTime(into, 1, ms), 1 + der.length);
    assert.equal(hex(into), `ee${hex(der)}eeee`, iso);
  }
  assertDerError(() => encodeTime(Date.UTC(10000, 0, 1)), /cannot be encoded/);
});

test('the reader walks a real SubjectPublicKeyInfo made by node:crypto', () => {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const top = readWhole(spki, TAG.SEQUENCE);
  const [alg, key] = readChildren(spki, top);
  const [algOid, curve] = readChildren(spki, expectTag(alg, TAG.SEQUENCE, 'alg'));
  assert.equal(decodeOid(content(spki, expectTag(algOid, TAG.OID, 'oid'))), '1.2.840.10045.2.1');
  assert.equal(decodeOid(content(spki, expectTag(curve, TAG.OID, 'curve'))), '1.2.840.10045.3.1.7');
  assert.equal(content(spki, expectTag(key, TAG.BIT_STRING, 'key')).length, 66);
});

// Fuzz findings (seeded campaign over mutated CSRs and certificates): inputs the reader took that
// DER does not allow.

test('decodeOid refuses an arc padded with a leading 0x80 byte instead of reading it as the short form', () => {
  // 55 1d 80 11 would otherwise read as 2.5.29.17 (subjectAltName), a second encoding of it.
  assertDerError(() => decodeOid(bytes('55 1d 80 11')), /non-minimal OID arc/);
  assertDerError(() => decodeOid(bytes('80 2a')), /non-minimal OID arc/);
  assertDerError(() => decodeOid(bytes('2a 86 48 ce 3d 80 01 07')), /non-minimal OID arc/);
  // 0x80 inside an arc, after its first byte, is an ordinary digit.
  assert.equal(decodeOid(bytes('2a 86 48 86 f7 0d 01 01 0b')), '1.2.840.113549.1.1.11');
  assert.equal(decodeOid(bytes('2a 81 00')), '1.2.128');
});

test('decodeTime refuses fields that name no calendar time instead of rolling them over', () => {
  const utc = (text: string): Buffer => tlv(TAG.UTC_TIME, Buffer.from(text, 'ascii'));
  const gen = (text: string): Buffer => tlv(TAG.GENERALIZED_TIME, Buffer.from(text, 'ascii'));
  // Hour 27 used to come out as 03:59 the next day, month 13 as next January, Feb 30 as March 2.
  for (const bad of [utc('251231275900Z'), utc('251301000000Z'), utc('250230000000Z'), utc('250101006000Z'), utc('250101000060Z'), utc('250001000000Z'), utc('250100000000Z'), gen('20250230000000Z'), gen('20251232000000Z'), gen('20240229240000Z')]) {
    assertDerError(() => decodeTime(bad, readTlv(bad, 0)), /not a valid calendar time/);
  }
  const leap = utc('240229235959Z');
  assert.equal(decodeTime(leap, readTlv(leap, 0)), Date.UTC(2024, 1, 29, 23, 59, 59));
  // A GeneralizedTime year below 100 is that year, not 1900 + it (Date.UTC's legacy reading).
  const early = gen('00500101000000Z');
  const year50 = new Date(0);
  year50.setUTCFullYear(50, 0, 1);
  assert.equal(decodeTime(early, readTlv(early, 0)), year50.getTime());
});

test('decodeTime refuses a byte above 0x7f where a digit belongs, instead of reading it with its top bit dropped', () => {
  // DER campaign (seed 0xde12): 2611270924 b4 31 5a decoded as 2026-11-27T09:24:41Z, because the
  // ascii decoder turns 0xb4 into "4".
  const bad = tlv(TAG.UTC_TIME, Buffer.concat([Buffer.from('2611270924', 'ascii'), Buffer.from([0xb4, 0x31, 0x5a])]));
  assertDerError(() => decodeTime(bad, readTlv(bad, 0)), /bad UTCTime/);
  const badGeneralized = tlv(TAG.GENERALIZED_TIME, Buffer.concat([Buffer.from([0xb2]), Buffer.from('0261127092441Z', 'ascii')]));
  assertDerError(() => decodeTime(badGeneralized, readTlv(badGeneralized, 0)), /bad GeneralizedTime/);
});
