import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_WATCH_TIMEOUT_MS, drawWatchLifetime } from '../../src/k8s/watch-lifetime.js';

test('a watch asks for between the least life and twice it, and is ended by the watcher a margin past that', () => {
  assert.deepEqual(drawWatchLifetime(DEFAULT_WATCH_TIMEOUT_MS, () => 0), { timeoutSeconds: 300, deadlineMs: 330_000 });
  assert.deepEqual(drawWatchLifetime(DEFAULT_WATCH_TIMEOUT_MS, () => 0.5), { timeoutSeconds: 450, deadlineMs: 480_000 });
  // Never twice the least itself: the range is [least, 2 x least).
  assert.deepEqual(drawWatchLifetime(DEFAULT_WATCH_TIMEOUT_MS, () => 1), { timeoutSeconds: 599, deadlineMs: 629_000 });
  assert.equal(drawWatchLifetime().timeoutSeconds >= 300 && drawWatchLifetime().timeoutSeconds < 600, true);
});

test('short lives (tests, impatient admins) keep a margin of at least a second; under a second rounds up to one', () => {
  assert.deepEqual(drawWatchLifetime(3000, () => 0), { timeoutSeconds: 3, deadlineMs: 4000 });
  assert.deepEqual(drawWatchLifetime(1000, () => 0.9), { timeoutSeconds: 1, deadlineMs: 2000 });
  assert.deepEqual(drawWatchLifetime(10, () => 0), { timeoutSeconds: 1, deadlineMs: 2000 });
  // A bad random source cannot take the timeout outside its range.
  assert.equal(drawWatchLifetime(60_000, () => -3).timeoutSeconds, 60);
  assert.equal(drawWatchLifetime(60_000, () => 7).timeoutSeconds, 119);
});
