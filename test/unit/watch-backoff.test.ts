import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WatchBackoff } from '../../src/k8s/watch-backoff.js';

test('delays double from the first to the ceiling; only the first failure of an outage is flagged', () => {
  const full = new WatchBackoff({ firstMs: 1000, maxMs: 30_000, random: () => 0 });
  const failures = Array.from({ length: 8 }, () => full.failed());
  assert.deepEqual(failures.map((f) => f.delayMs), [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  assert.deepEqual(failures.map((f) => f.first), [true, false, false, false, false, false, false, false]);
});

test('jitter takes up to half off, so the spacing still grows', () => {
  const halved = new WatchBackoff({ firstMs: 1000, maxMs: 30_000, random: () => 0.999999 });
  assert.deepEqual(Array.from({ length: 3 }, () => halved.failed().delayMs), [500, 1000, 2000]);
});

test('an established watch ends the outage: the count is returned and the next failure starts over', () => {
  const b = new WatchBackoff({ firstMs: 1000, maxMs: 30_000, random: () => 0 });
  assert.equal(b.established(), 0);
  b.failed();
  b.failed();
  b.failed();
  assert.equal(b.established(), 3);
  assert.deepEqual(b.failed(), { delayMs: 1000, first: true });
  assert.equal(b.closedMs, 1000);
});

test('a long outage keeps the delay finite at the ceiling', () => {
  const b = new WatchBackoff({ firstMs: 1000, maxMs: 30_000, random: () => 0 });
  for (let i = 0; i < 2000; i++) b.failed();
  assert.equal(b.failed().delayMs, 30_000);
});
