/**
 * csrDerFromPem's base64 check walks the body once instead of stripping whitespace and matching a
 * regular expression. These cases hold it to the reading it replaced: strip every JavaScript
 * whitespace character, then require the base64 alphabet, at most two "=" at the end and a length
 * that is a multiple of 4.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BadRequestError } from '../../src/core/errors.js';
import { csrDerFromPem } from '../../src/core/pki/csr.js';

/** The earlier reading, kept here as the oracle. */
function reference(body: string): Buffer | null {
  const stripped = body.replace(/\s+/g, '');
  if (stripped.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(stripped)) return null;
  return Buffer.from(stripped, 'base64');
}

function ours(body: string): Buffer | null {
  try {
    return csrDerFromPem(`-----BEGIN CERTIFICATE REQUEST-----\n${body}\n-----END CERTIFICATE REQUEST-----\n`);
  } catch (err) {
    if (err instanceof BadRequestError && err.code === 'RAMPART_ERR_CSR_NOT_PEM' && /not valid base64/.test(err.message)) return null;
    throw err;
  }
}

/** A small seeded generator, so a failure names a case that can be run again. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
// ASCII whitespace, whitespace beyond ASCII (U+202F and U+205F have low bytes "/" and "_", which
// node's decoder reads as base64), and characters that are neither.
const SPACES = [' ', '\t', '\r\n', '\n', '\v', '\f', '\u00a0', '\u2028', '\u202f', '\u205f', '\u3000', '\ufeff'];
const STRAY = ['=', '-', '_', '!', '.', '\u0000', '\u00e9', '\u2f2f'];

test('the one-pass base64 check takes and decodes exactly what the strip-and-match reading did', () => {
  const next = random(0x9e3779b9);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  let accepted = 0;
  for (let i = 0; i < 4000; i++) {
    const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(next() * 60) }, () => Math.floor(next() * 256)));
    const chars = [...bytes.toString('base64')];
    const mutations = Math.floor(next() * 4);
    for (let m = 0; m < mutations; m++) {
      const at = Math.floor(next() * (chars.length + 1));
      const kind = next();
      if (kind < 0.6) chars.splice(at, 0, pick(SPACES));
      else if (kind < 0.75) chars.splice(at, 0, pick(STRAY));
      else if (kind < 0.9) chars.splice(at, 0, pick([...ALPHABET]));
      else chars.splice(at, 1);
    }
    const body = chars.join('');
    const want = reference(body);
    const got = ours(body);
    assert.deepEqual(got === null ? null : got.toString('hex'), want === null ? null : want.toString('hex'), `case ${i}: ${JSON.stringify(body)}`);
    if (want !== null) accepted++;
  }
  // Both outcomes must be well represented, or the comparison says little.
  assert.ok(accepted > 1000 && accepted < 3800, `accepted ${accepted} of 4000`);
});

test('whitespace beyond ASCII inside the body is stripped, not decoded as the base64 character its low byte names', () => {
  const der = Buffer.from('308201', 'hex');
  const body = der.toString('base64');
  assert.equal(ours(`${body.slice(0, 2)}\u202f${body.slice(2)}`)?.toString('hex'), '308201');
  assert.equal(ours(`${body.slice(0, 2)}\u205f${body.slice(2)}`)?.toString('hex'), '308201');
});

test('bodies the check refuses: empty, only padding, padding inside, three pads, a length not a multiple of 4', () => {
  for (const body of ['', '  \n ', '====', 'AA=A', 'A===', 'AAAAA', 'AA=\n=A', 'QUJD\u0000']) {
    assert.equal(ours(body), null, JSON.stringify(body));
    assert.equal(reference(body), null, `the oracle agrees on ${JSON.stringify(body)}`);
  }
});
