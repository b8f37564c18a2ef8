import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BACKOFF_MAX_MS, backoffCeiling, decide, lastStartupAttemptAt, MAX_RETRY_AFTER_MS, renewalTime, retryDelay, startupRetryAt, usableFrom } from '../../src/agent/renewal-policy.js';

const HOUR = 3_600_000;
const cert = { notBefore: Date.UTC(2026, 0, 1), notAfter: Date.UTC(2026, 0, 1) + HOUR };

test('renewal falls in the 40-60 % window of the lifetime, 50 % in the middle', () => {
  assert.equal(renewalTime(cert, 0), cert.notBefore + 0.4 * HOUR);
  assert.equal(renewalTime(cert, 0.5), cert.notBefore + 0.5 * HOUR);
  for (let i = 0; i < 1000; i++) {
    const at = renewalTime(cert, i / 1000);
    assert.ok(at >= cert.notBefore + 0.4 * HOUR && at <= cert.notBefore + 0.6 * HOUR, `draw ${i / 1000} -> ${at - cert.notBefore}`);
  }
  assert.ok(renewalTime(cert, 0.999999) <= cert.notBefore + 0.6 * HOUR);
  // Out-of-range draws are clamped rather than renewing outside the window.
  assert.equal(renewalTime(cert, -3), cert.notBefore + 0.4 * HOUR);
  assert.ok(renewalTime(cert, 7) <= cert.notBefore + 0.6 * HOUR);
  assert.equal(renewalTime(cert, Number.NaN), cert.notBefore + 0.4 * HOUR);
});

test('the lifetime is measured from receipt when the CA backdated NotBefore', () => {
  const received = cert.notBefore + 60_000;
  assert.equal(usableFrom(cert.notBefore, received), received);
  assert.equal(usableFrom(received + 5, received), received + 5);
  const shortCert = { notBefore: usableFrom(received - 60_000, received), notAfter: received + 4_000 };
  const at = renewalTime(shortCert, 0.5);
  assert.equal(at, received + 2_000);
});

test('backoff ceilings double from 1 s and stop at 60 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 8, 50, 10_000].map((n) => backoffCeiling(n)), [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000]);
  assert.equal(backoffCeiling(0), 1000);
  assert.equal(backoffCeiling(3, 100, 250), 250);
});

test('full jitter stays within [0, ceiling] and spans it', () => {
  for (let failures = 1; failures < 12; failures++) {
    const ceiling = backoffCeiling(failures);
    assert.equal(retryDelay({ failures, random: 0 }), 0);
    const top = retryDelay({ failures, random: 0.999999 });
    assert.ok(top <= ceiling && top >= ceiling * 0.99, `${failures}: ${top} vs ${ceiling}`);
    for (let r = 0; r < 1; r += 0.05) {
      const d = retryDelay({ failures, random: r });
      assert.ok(d >= 0 && d <= Math.min(ceiling, BACKOFF_MAX_MS));
    }
  }
});

test('Retry-After is honoured as a lower bound and capped', () => {
  assert.equal(retryDelay({ failures: 1, random: 0.5, retryAfterSeconds: 7 }), 7000);
  assert.equal(retryDelay({ failures: 7, random: 0.9, retryAfterSeconds: 2 }), Math.floor(0.9 * 60_000));
  assert.equal(retryDelay({ failures: 1, random: 0, retryAfterSeconds: 86_400 }), MAX_RETRY_AFTER_MS);
  assert.equal(retryDelay({ failures: 1, random: 0, retryAfterSeconds: -1 }), 0);
  assert.equal(retryDelay({ failures: 1, random: 0, retryAfterSeconds: Number.NaN }), 0);
});

test('while a certificate is valid, a retry waits at most half of what it has left (and at least 1 s); Retry-After still wins', () => {
  // The outside QA case: sixth failure, a 31.9 s draw, 29 s left on the certificate.
  assert.equal(retryDelay({ failures: 6, random: 0.997, expiresInMs: 29_000 }), 14_500);
  assert.equal(retryDelay({ failures: 6, random: 0.997, expiresInMs: 1_000 }), 1_000);
  assert.equal(retryDelay({ failures: 6, random: 0.1, expiresInMs: 3_600_000 }), Math.floor(0.1 * 32_000), 'far from expiry the backoff is unchanged');
  assert.equal(retryDelay({ failures: 6, random: 0.997, expiresInMs: 29_000, retryAfterSeconds: 20 }), 20_000);
  assert.equal(retryDelay({ failures: 6, random: 0.997, expiresInMs: 0 }), 5_000, 'an expired certificate: at most 5 s, the pod is down meanwhile');
  assert.equal(retryDelay({ failures: 6, random: 0.1, expiresInMs: -60_000 }), Math.floor(0.1 * 32_000));
  assert.equal(retryDelay({ failures: 6, random: 0.997 }), Math.floor(0.997 * 32_000), 'no certificate held yet: the plain backoff');
});

test('decide: fetch at once without a certificate, wait for the renewal point, backoff wins after a failure', () => {
  const now = cert.notBefore + 1000;
  assert.deepEqual(decide({ renewAt: null, retryAt: null }, now), { action: 'renew' });
  assert.deepEqual(decide({ renewAt: now + 5, retryAt: null }, now), { action: 'wait', untilMs: now + 5 });
  assert.deepEqual(decide({ renewAt: now, retryAt: null }, now), { action: 'renew' });
  // A host that slept past the renewal point renews on the first look at the clock.
  assert.deepEqual(decide({ renewAt: now - HOUR, retryAt: null }, now), { action: 'renew' });
  assert.deepEqual(decide({ renewAt: now - 10, retryAt: now + 500 }, now), { action: 'wait', untilMs: now + 500 });
  assert.deepEqual(decide({ renewAt: null, retryAt: now - 1 }, now), { action: 'renew' });
});

test('start-up: the last attempt comes 1 s before the deadline, or a quarter of a shorter window', () => {
  assert.equal(lastStartupAttemptAt(60_000, 60_000), 59_000);
  assert.equal(lastStartupAttemptAt(2_000, 2_000), 1_500);
  assert.equal(lastStartupAttemptAt(10, 0), 10);
});

test('start-up: a backoff that would outlast the deadline is cut to the last attempt, once', () => {
  const lastAttemptAt = 59_000;
  // Within the window: the backoff stands.
  assert.equal(startupRetryAt({ attemptedAt: 10_000, backoffUntil: 40_000, lastAttemptAt }), 40_000);
  // Past it: the next attempt is the last one, not a sleep through the deadline.
  assert.equal(startupRetryAt({ attemptedAt: 10_000, backoffUntil: 64_000, lastAttemptAt }), lastAttemptAt);
  // The last attempt failed: no burst of retries as the deadline nears.
  assert.equal(startupRetryAt({ attemptedAt: lastAttemptAt, backoffUntil: 62_000, lastAttemptAt }), 62_000);
  assert.equal(startupRetryAt({ attemptedAt: 59_500, backoffUntil: 59_800, lastAttemptAt }), 59_800);
});
