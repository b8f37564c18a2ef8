/** core/clock.ts durations and core/ca/policy.ts leaf lifetimes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, ManualClock, parseDuration } from '../../src/core/clock.js';
import { DEFAULT_TTL_POLICY, grantTtlMs, LEAF_BACKDATE_MS, leafValidity, validateTtlPolicy } from '../../src/core/ca/policy.js';

test('parseDuration accepts unit forms, combinations and bare seconds', () => {
  const cases: Array<[string, number]> = [
    ['90s', 90_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['30d', 30 * 86_400_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1d2h3m4s5ms', 86_400_000 + 2 * 3_600_000 + 3 * 60_000 + 4000 + 5],
    ['1.5h', 5_400_000],
    ['60', 60_000],
    ['0', 0],
    ['  5m  ', 300_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('parseDuration returns null for anything that is not a duration', () => {
  for (const text of ['', ' ', 'abc', '5x', '5 m', 'm5', '-5m', '5m junk', 'junk 5m', '1h 30m', '5M', '1.5', '1e3s', 'h', '5m-']) {
    assert.equal(parseDuration(text), null, JSON.stringify(text));
  }
});

test('formatDuration is short and round-trips through parseDuration', () => {
  assert.equal(formatDuration(3_600_000), '1h');
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(90_000), '1m30s');
  assert.equal(formatDuration(86_400_000 * 2), '2d');
  assert.equal(formatDuration(500), '500ms');
  for (const ms of [1000, 61_000, 3_601_000, 90_061_000]) assert.equal(parseDuration(formatDuration(ms)), ms);
});

test('ManualClock moves only when told', () => {
  const clock = new ManualClock(1_000);
  assert.equal(clock.now(), 1_000);
  clock.advance(500);
  assert.equal(clock.now(), 1_500);
  clock.set(42);
  assert.equal(clock.now(), 42);
  assert.equal(new ManualClock().now(), Date.UTC(2026, 0, 1));
});

test('grantTtlMs: default 1 h when absent, clamped (not refused) into [5 min, 24 h]', () => {
  assert.deepEqual(DEFAULT_TTL_POLICY, { defaultTtlMs: 3_600_000, minTtlMs: 300_000, maxTtlMs: 86_400_000 });
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, undefined), 3_600_000);
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, null), 3_600_000);
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 10), 300_000, 'floored to the minimum');
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 1), 300_000);
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 300), 300_000);
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 301), 301_000);
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 7200), 7_200_000, 'inside the range: as asked');
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 86_400), 86_400_000);
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, 999_999), 86_400_000, 'clamped to the maximum');
  assert.equal(grantTtlMs(DEFAULT_TTL_POLICY, Number.MAX_SAFE_INTEGER), 86_400_000);
  const custom = validateTtlPolicy({ defaultTtlMs: 600_000, minTtlMs: 60_000, maxTtlMs: 1_200_000 });
  assert.equal(grantTtlMs(custom, undefined), 600_000);
  assert.equal(grantTtlMs(custom, 10), 60_000);
  assert.equal(grantTtlMs(custom, 5000), 1_200_000);
});

test('grantTtlMs refuses ttlSeconds that are not positive whole numbers', () => {
  for (const bad of [0, -1, -3600, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '60', '1h', true, {}, [60]]) {
    assert.throws(() => grantTtlMs(DEFAULT_TTL_POLICY, bad), { code: 'RAMPART_ERR_TTL_INVALID', category: 'bad-request', message: /ttlSeconds must be a positive whole number/ }, String(bad));
  }
});

test('validateTtlPolicy requires 0 < min <= default <= max', () => {
  assert.throws(() => validateTtlPolicy({ defaultTtlMs: 1000, minTtlMs: 2000, maxTtlMs: 3000 }), { code: 'RAMPART_ERR_TTL_INVALID' });
  assert.throws(() => validateTtlPolicy({ defaultTtlMs: 4000, minTtlMs: 2000, maxTtlMs: 3000 }), { code: 'RAMPART_ERR_TTL_INVALID' });
  assert.throws(() => validateTtlPolicy({ defaultTtlMs: 1000, minTtlMs: 0, maxTtlMs: 3000 }), { code: 'RAMPART_ERR_TTL_INVALID' });
  const ok = { defaultTtlMs: 2000, minTtlMs: 2000, maxTtlMs: 2000 };
  assert.equal(validateTtlPolicy(ok), ok);
});

test('leafValidity backdates 60 s and never outlives the signer', () => {
  const now = Date.UTC(2026, 4, 1, 12);
  assert.equal(LEAF_BACKDATE_MS, 60_000);
  assert.deepEqual(leafValidity(now, 3_600_000, now + 86_400_000), { notBefore: now - 60_000, notAfter: now + 3_600_000 });
  assert.deepEqual(leafValidity(now, 3_600_000, now + 1_800_000), { notBefore: now - 60_000, notAfter: now + 1_800_000 });
});
