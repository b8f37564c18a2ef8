import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RestartBackoff } from '../../src/runtime/restart-backoff.js';

const OPTIONS = { firstMs: 1000, maxMs: 30_000, resetAfterMs: 30_000, jitter: 0.2 } as const;

test('restart backoff: a worker that never listens is restarted after 1, 2, 4, 8, 16 s, then every 30 s', () => {
  const backoff = new RestartBackoff({ ...OPTIONS, random: () => 0 });
  const delays = Array.from({ length: 8 }, () => backoff.next(undefined));
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
});

test('restart backoff: jitter only shortens a delay, by at most its fraction, and the spacing still grows', () => {
  const most = new RestartBackoff({ ...OPTIONS, random: () => 0.999_999 });
  assert.deepEqual(Array.from({ length: 7 }, () => most.next(undefined)), [800, 1600, 3200, 6400, 12_800, 24_000, 24_000]);
  // The worst case for growth: one delay at its longest, the next at its shortest.
  let draws = 0;
  const alternating = new RestartBackoff({ ...OPTIONS, random: () => (draws++ % 2 === 0 ? 0 : 0.999_999) });
  const delays = Array.from({ length: 5 }, () => alternating.next(undefined));
  for (let i = 1; i < delays.length; i++) assert.ok((delays[i] as number) > (delays[i - 1] as number), `delays ${delays.join(', ')}`);
});

test('restart backoff: a worker that served for 30 s makes its slot start over at 1 s; a shorter run does not', () => {
  const backoff = new RestartBackoff({ ...OPTIONS, random: () => 0 });
  assert.equal(backoff.next(undefined), 1000);
  assert.equal(backoff.next(undefined), 2000);
  assert.equal(backoff.next(29_999), 4000, 'served less than 30 s: still backing off');
  assert.equal(backoff.next(30_000), 1000, 'served 30 s: a new crash, not the same loop');
  assert.equal(backoff.next(undefined), 2000);
});
