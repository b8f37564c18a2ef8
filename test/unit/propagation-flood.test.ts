/**
 * Agent sightings under a flood of made-up instance ids (outside security QA): any workload with
 * an SVID picks its own Rampart-Agent-Id, so the bound on sightings must not let one identity push
 * the others out, and a refusal names who is behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PropagationTracker } from '../../src/core/ca/propagation.js';
import { SightingStore } from '../../src/core/ca/sighting-store.js';

const T0 = Date.UTC(2026, 0, 1);
const INTERVAL = 30_000;
const LAGGER = 'spiffe://td/ns/shop/sa/web#web-7d9f-1';
const ATTACKER = 'spiffe://td/ns/evil/sa/flood';

test('a flood of one identity\'s made-up agents cannot push out an agent that still holds the old bundle', () => {
  const tracker = new PropagationTracker(1_000);
  tracker.report(LAGGER, 1, T0);
  tracker.report('spiffe://td/ns/shop/sa/db#db-0', 2, T0);
  for (let i = 0; i < 5_000; i++) tracker.report(`${ATTACKER}#fake-${i}`, 2, T0 + 1_000 + i);
  const status = tracker.status(2, T0 - INTERVAL, T0 + INTERVAL, INTERVAL);
  assert.equal(status.propagated, false, 'the lagger is still counted');
  assert.equal(status.agentsSeen, 1_000);
  assert.equal(status.agentsUpToDate, 999);
  assert.match(status.reason, /^999 of 1000 agents seen recently hold bundle sequence 2 \(behind: spiffe:\/\/td\/ns\/shop\/sa\/web \(1 agent\)\)/);
});

test('ghost agents that report an old bundle are named by identity, most agents first', () => {
  const tracker = new PropagationTracker();
  for (let i = 0; i < 20; i++) tracker.report(`${ATTACKER}#ghost-${i}`, 1, T0);
  tracker.report(LAGGER, 1, T0);
  for (const sa of ['a', 'b', 'c']) tracker.report(`spiffe://td/ns/x/sa/${sa}`, 1, T0);
  tracker.report('spiffe://td/ns/shop/sa/db#db-0', 2, T0);
  const status = tracker.status(2, T0 - INTERVAL, T0 + 1_000, INTERVAL);
  assert.equal(status.propagated, false);
  assert.match(status.reason, /^1 of 25 agents seen recently hold bundle sequence 2 \(behind: spiffe:\/\/td\/ns\/evil\/sa\/flood \(20 agents\), spiffe:\/\/td\/ns\/shop\/sa\/web \(1 agent\), spiffe:\/\/td\/ns\/x\/sa\/a \(1 agent\), 2 more identities\)/);
});

test('the store makes way from the identity with the most instances, its least recently seen first, and from the oldest overall once each has one', () => {
  const store = new SightingStore<number>(4);
  store.put('a#1', 1);
  store.put('b#1', 1);
  store.put('b#2', 1);
  store.put('b#3', 1);
  store.put('b#1', 2); // seen again: b#2 is now b's least recently seen
  store.put('c#1', 1);
  assert.deepEqual([...store.entries()].map(([k]) => k).sort(), ['a#1', 'b#1', 'b#3', 'c#1']);
  store.put('d', 1);
  assert.deepEqual([...store.entries()].map(([k]) => k).sort(), ['a#1', 'b#1', 'c#1', 'd']);
  store.put('e', 1); // one instance each: the least recently seen overall (a#1) goes
  assert.deepEqual([...store.entries()].map(([k]) => k).sort(), ['b#1', 'c#1', 'd', 'e']);
  assert.equal(store.size, 4);
});
