/** Each refused rotation step says why, and when it will be allowed. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { isRampartError } from '../../src/core/errors.js';
import { PropagationTracker } from '../../src/core/ca/propagation.js';
import {
  activateRoot,
  bootstrapState,
  prepareRoot,
  RETIRE_MARGIN_MS,
  retireableAt,
  retireRoots,
  type CaLifetimes,
} from '../../src/core/ca/rotation.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const LIFE: CaLifetimes = { rootTtlMs: 20 * DAY, intermediateTtlMs: 5 * DAY };
const START = Date.UTC(2026, 0, 1);

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isRampartError(err), String(err));
    assert.equal(err.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
    assert.equal(err.category, 'conflict', 'maps to HTTP 409');
    return err.message;
  }
  assert.fail('the step was allowed');
}

test('prepare twice is refused and names the pending root', () => {
  const prepared = prepareRoot(bootstrapState('cluster.local', START, LIFE), START + HOUR, LIFE);
  const pending = prepared.roots.find((r) => r.phase === 'prepared')!;
  const message = refusal(() => prepareRoot(prepared, START + 2 * HOUR, LIFE));
  assert.match(message, new RegExp(`${pending.fingerprint.slice(0, 16)} was already prepared at ${new Date(START + HOUR).toISOString()}`));
  assert.match(message, /activate it/);
});

test('activate before propagation is refused with the reason; --force skips the check', () => {
  const tracker = new PropagationTracker();
  const interval = 60_000;
  let state = bootstrapState('cluster.local', START, LIFE);
  tracker.report('agent-a', 1, START);
  tracker.report('agent-b', 1, START);
  state = prepareRoot(state, START + 1000, LIFE);
  const published = START + 1000;
  tracker.report('agent-a', state.sequence, published + 5000);
  const early = tracker.status(state.sequence, published, published + 10_000, interval);
  assert.equal(early.propagated, false);
  assert.equal(early.agentsSeen, 2);
  assert.equal(early.agentsUpToDate, 1);
  assert.equal(early.ratio, 0.5);
  const message = refusal(() => activateRoot(state, published + 10_000, { propagation: early, force: false, maxLeafTtlMs: HOUR }));
  assert.match(message, /may not have reached every agent yet: 1 of 2 agents seen recently hold bundle sequence 2/);
  assert.match(message, new RegExp(`it was published at ${new Date(published).toISOString().replace(/\./g, '\\.')} and agents that poll slowly get one refresh interval, until ${new Date(published + interval).toISOString().replace(/\./g, '\\.')}`));
  assert.match(message, /--force/);

  // Every agent now holds it, but the interval has not passed: still refused.
  tracker.report('agent-b', state.sequence, published + 20_000);
  const allButTime = tracker.status(state.sequence, published, published + 30_000, interval);
  assert.equal(allButTime.agentsUpToDate, 2);
  assert.equal(allButTime.propagated, false);
  // The wait is then the whole reason, and the message leads with it (soak finding).
  assert.match(allButTime.reason, /^2 of 2 agents seen recently hold bundle sequence 2, but agents that poll slowly may not have asked yet: it was published at \S+Z and they get one refresh interval, until \S+Z$/);
  const waiting = refusal(() => activateRoot(state, published + 30_000, { propagation: allButTime, force: false, maxLeafTtlMs: HOUR }));
  assert.match(waiting, /^the new trust bundle has reached every agent seen so far: 2 of 2 agents seen recently hold bundle sequence 2, but agents that poll slowly may not have asked yet: .*; retry then, or use --force$/);
  // After one interval: propagated.
  const ready = tracker.status(state.sequence, published, published + interval, interval);
  assert.equal(ready.propagated, true, ready.reason);
  const active = activateRoot(state, published + interval, { propagation: ready, force: false, maxLeafTtlMs: HOUR });
  assert.deepEqual(active.roots.map((r) => r.phase), ['retiring', 'active']);
  assert.equal(active.sequence, state.sequence + 1);

  // An agent gone quiet for two intervals no longer holds activation back.
  tracker.report('agent-c', 1, published + interval);
  assert.equal(tracker.status(state.sequence, published, published + 2 * interval, interval).propagated, false);
  assert.equal(tracker.status(state.sequence, published, published + 3 * interval + 1, interval).agentsSeen, 0);

  const forced = activateRoot(state, published + 1, { propagation: early, force: true, maxLeafTtlMs: HOUR });
  assert.deepEqual(forced.roots.map((r) => r.phase), ['retiring', 'active']);
});

test('activate with nothing prepared, and retire with nothing retiring, say what to do', () => {
  const state = bootstrapState('cluster.local', START, LIFE);
  assert.match(refusal(() => activateRoot(state, START, { propagation: { propagated: true, reason: '' }, force: true, maxLeafTtlMs: HOUR })), /no root is prepared; run `rampart root prepare` first/);
  assert.match(refusal(() => retireRoots(state, START, { force: true })), /no root is retiring/);
});

test('retire before the old leaves expired is refused with the time it becomes safe', () => {
  let state = bootstrapState('cluster.local', START, LIFE);
  state = prepareRoot(state, START + HOUR, LIFE);
  const activatedAt = START + 2 * HOUR;
  state = activateRoot(state, activatedAt, { propagation: { propagated: true, reason: '' }, force: false, maxLeafTtlMs: 24 * HOUR });
  const retiring = state.roots.find((r) => r.phase === 'retiring')!;
  const safeAt = activatedAt + 24 * HOUR + RETIRE_MARGIN_MS;
  assert.equal(retireableAt(retiring), safeAt);
  const message = refusal(() => retireRoots(state, activatedAt + HOUR, { force: false }));
  assert.match(message, new RegExp(`valid until ${new Date(safeAt).toISOString().replace(/\./g, '\\.')} \\(in 23h5m\\)`));
  assert.match(message, /--force/);
  assert.match(refusal(() => retireRoots(state, safeAt - 1, { force: false })), /\(in 1ms\)/);
  const retired = retireRoots(state, safeAt, { force: false });
  assert.deepEqual(retired.roots.map((r) => r.phase), ['active']);
  assert.equal(retired.sequence, state.sequence + 1);
  const forced = retireRoots(state, activatedAt + 1, { force: true });
  assert.deepEqual(forced.roots.map((r) => r.phase), ['active']);
});

test('a retiring root may go as soon as its own intermediate ended, even if the max TTL is longer', () => {
  const life: CaLifetimes = { rootTtlMs: 3 * DAY, intermediateTtlMs: DAY };
  let state = bootstrapState('cluster.local', START, life);
  state = prepareRoot(state, START + HOUR, life);
  state = activateRoot(state, START + 2 * HOUR, { propagation: { propagated: true, reason: '' }, force: false, maxLeafTtlMs: 10 * DAY });
  const retiring = state.roots.find((r) => r.phase === 'retiring')!;
  // Leaves are clamped to the intermediate, so none can outlive it.
  assert.equal(retireableAt(retiring), retiring.intermediate.notAfter + RETIRE_MARGIN_MS);
});
