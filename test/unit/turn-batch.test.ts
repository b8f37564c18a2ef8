import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as turnEnd } from 'node:timers/promises';
import { createTurnBatch } from '../../src/server/turn-batch.js';

/** Lets every promise callback that is already due run, without letting the turn end. */
async function drainMicrotasks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

function tracked(promise: Promise<void>): { done: () => boolean } {
  let done = false;
  void promise.then(() => {
    done = true;
  });
  return { done: () => done };
}

test('turn batch: answers held in one turn are all released when the turn ends, not before', async () => {
  const batch = createTurnBatch({ maxBatch: 16, maxDelayMs: 1_000 });
  const held = [tracked(batch.release()), tracked(batch.release()), tracked(batch.release())];
  await drainMicrotasks();
  assert.deepEqual(held.map((h) => h.done()), [false, false, false]);
  assert.equal(batch.held(), 3);
  await turnEnd();
  await drainMicrotasks();
  assert.deepEqual(held.map((h) => h.done()), [true, true, true]);
  assert.equal(batch.held(), 0);
});

test('turn batch: the answer that fills the batch releases it at once', async () => {
  const batch = createTurnBatch({ maxBatch: 3, maxDelayMs: 1_000, atTurnEnd: () => undefined });
  const first = [tracked(batch.release()), tracked(batch.release())];
  await drainMicrotasks();
  assert.deepEqual(first.map((h) => h.done()), [false, false]);
  const third = tracked(batch.release());
  await drainMicrotasks();
  assert.deepEqual([...first, third].map((h) => h.done()), [true, true, true]);
  // The next batch starts empty.
  const fourth = tracked(batch.release());
  await drainMicrotasks();
  assert.equal(fourth.done(), false);
  assert.equal(batch.held(), 1);
});

test('turn batch: a later answer releases everything once the first has waited maxDelayMs', async () => {
  let now = 100;
  const batch = createTurnBatch({ maxBatch: 16, maxDelayMs: 2, atTurnEnd: () => undefined, nowMs: () => now });
  const early = tracked(batch.release());
  now = 101.5;
  const middle = tracked(batch.release());
  await drainMicrotasks();
  assert.deepEqual([early.done(), middle.done()], [false, false]);
  now = 102;
  const late = tracked(batch.release());
  await drainMicrotasks();
  assert.deepEqual([early.done(), middle.done(), late.done()], [true, true, true]);
});

test('turn batch: one turn-end callback per batch, and a batch after it schedules its own', async () => {
  const scheduled: Array<() => void> = [];
  const batch = createTurnBatch({ maxBatch: 16, maxDelayMs: 1_000, atTurnEnd: (cb) => scheduled.push(cb) });
  const a = tracked(batch.release());
  const b = tracked(batch.release());
  assert.equal(scheduled.length, 1);
  scheduled[0]!();
  await drainMicrotasks();
  assert.deepEqual([a.done(), b.done()], [true, true]);
  const c = tracked(batch.release());
  assert.equal(scheduled.length, 2);
  scheduled[1]!();
  await drainMicrotasks();
  assert.equal(c.done(), true);
});
