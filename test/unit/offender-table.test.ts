/**
 * The client-chain guard's offender table (tls/offender-table.ts) against lru-cache, which the
 * guard used before and the CA's authenticators still use: the same seeded run of writes, reads,
 * walks and clock steps must give the same answers from both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LRUCache } from 'lru-cache';
import { OffenderTable } from '../../src/tls/offender-table.js';

function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

test('a seeded run of writes, reads, walks and clock steps gives the same answers as lru-cache', () => {
  const max = 8;
  const ttlMs = 100;
  // lru-cache reads a start time of 0 as "no ttl", so the clock starts well past it.
  let clock = 1_000_000;
  const now = (): number => clock;
  const table = new OffenderTable<number>(max, ttlMs, now);
  // ttlResolution 0: lru-cache would otherwise keep one reading of the clock for a millisecond of real time.
  const oracle = new LRUCache<string, number>({ max, ttl: ttlMs, ttlResolution: 0, perf: { now } });
  const random = seededRandom(20261129);
  let hits = 0;
  let expiredOrEvicted = 0;
  for (let step = 0; step < 20_000; step++) {
    const key = `10.0.0.${Math.floor(random() * 24)}`;
    const roll = random();
    if (roll < 0.4) {
      table.set(key, step);
      oracle.set(key, step);
    } else if (roll < 0.8) {
      const got = table.get(key);
      assert.equal(got, oracle.get(key), `step ${step}: get ${key}`);
      if (got === undefined) expiredOrEvicted++;
      else hits++;
    } else if (roll < 0.9) {
      assert.deepEqual([...table.values()].sort(), [...oracle.values()].sort(), `step ${step}: live values`);
    } else {
      clock += Math.floor(random() * 60);
    }
    assert.ok(table.size <= max, `step ${step}: ${table.size} entries held`);
  }
  // The run must have exercised both outcomes, or it compared nothing.
  assert.ok(hits > 1000 && expiredOrEvicted > 1000, `${hits} hits, ${expiredOrEvicted} misses`);
});

test('the least recently used entry goes first, and a read counts as a use', () => {
  const table = new OffenderTable<string>(2, 1_000, () => 0);
  table.set('a', 'A');
  table.set('b', 'B');
  assert.equal(table.get('a'), 'A');
  table.set('c', 'C');
  assert.equal(table.get('b'), undefined, 'b was the least recently used');
  assert.deepEqual([...table.values()], ['A', 'C']);
});

test('an entry expires ttl after its last write, not after its last read', () => {
  let clock = 0;
  const table = new OffenderTable<string>(4, 100, () => clock);
  table.set('a', 'A');
  clock = 90;
  assert.equal(table.get('a'), 'A');
  clock = 100;
  assert.equal(table.get('a'), 'A', 'exactly ttl after the write it is still held');
  clock = 101;
  assert.equal(table.get('a'), undefined);
  assert.equal(table.size, 0, 'an expired entry is dropped when read');
  table.set('b', 'B');
  clock = 250;
  table.set('b', 'B2');
  clock = 300;
  assert.deepEqual([...table.values()], ['B2'], 'a rewrite starts the ttl again');
});

test('a table of no entries, or with a ttl that is not a positive time, is refused', () => {
  assert.throws(() => new OffenderTable(0, 1, () => 0), RangeError);
  // lru-cache reads a ttl of 0 as "never expires"; here it is a mistake, not a setting.
  for (const ttl of [0, -1, Number.NaN]) assert.throws(() => new OffenderTable(1, ttl, () => 0), RangeError, String(ttl));
});
