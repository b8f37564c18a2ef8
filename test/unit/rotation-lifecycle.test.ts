/**
 * Two whole root lifetimes on a fake clock: the automatic schedule (dueStep) drives the pure
 * transitions in small steps, and after every step the rotation invariants of DESIGN section 4
 * are checked, including that every leaf the CA could have issued still chains to a root in the
 * bundle until it expires.
 */
import { X509Certificate } from 'node:crypto';
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { isRampartError } from '../../src/core/errors.js';
import {
  activateRoot,
  activeRoot,
  bootstrapState,
  dueStep,
  prepareRoot,
  renewIntermediates,
  retireableAt,
  retireRoots,
  rotationSchedule,
  type CaLifetimes,
  type PropagationVerdict,
} from '../../src/core/ca/rotation.js';
import { bundleFromState } from '../../src/core/ca/trust-bundle.js';
import type { CaState } from '../../src/core/ports.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const LIFE: CaLifetimes = { rootTtlMs: 365 * DAY, intermediateTtlMs: 30 * DAY };
const MAX_LEAF_TTL = 24 * HOUR;
/** Relying parties' clocks may run this far behind the CA's (the leaf backdating absorbs as much). */
const PEER_SKEW = 60_000;
const PHASE_ORDER = ['prepared', 'active', 'retiring', 'removed'] as const;

interface Leaf {
  readonly notAfter: number;
  readonly rootFingerprint: string;
  readonly issuedAt: number;
}

interface Checker {
  check(state: CaState, now: number): void;
  readonly phasesSeen: Map<string, string[]>;
}

function bundleKey(state: CaState): string {
  return JSON.stringify(bundleFromState(state).roots);
}

/** Checks the invariants after every step and remembers what it needs across steps. */
function invariantChecker(): Checker {
  let previous: CaState | null = null;
  const leaves: Leaf[] = [];
  const phasesSeen = new Map<string, string[]>();
  const verifiedIntermediates = new Set<string>();
  return {
    phasesSeen,
    check(state, now) {
      const where = `at ${new Date(now).toISOString()} (sequence ${state.sequence})`;
      assert.ok(state.roots.length > 0, `bundle empty ${where}`);
      assert.ok(state.roots.length <= 3, `bundle grew to ${state.roots.length} roots ${where}`);
      const actives = state.roots.filter((r) => r.phase === 'active');
      assert.equal(actives.length, 1, `exactly one active root ${where}`);
      const active = actives[0]!;
      assert.ok(active.intermediate.notAfter <= active.notAfter, `active intermediate outlives its root ${where}`);
      assert.ok(active.intermediate.notAfter > now, `active intermediate expired ${where}`);
      assert.ok(active.notAfter > now, `active root expired ${where}`);
      if (!verifiedIntermediates.has(active.intermediate.certPem)) {
        // The records are what the code reasons about; the certificates are what peers check.
        const inter = new X509Certificate(active.intermediate.certPem);
        const root = new X509Certificate(active.certPem);
        assert.ok(inter.checkIssued(root) && inter.verify(root.publicKey), `intermediate not signed by the active root ${where}`);
        assert.ok(Date.parse(inter.validTo) <= Date.parse(root.validTo), `intermediate certificate outlives its root ${where}`);
        assert.equal(Date.parse(inter.validTo), active.intermediate.notAfter);
        verifiedIntermediates.add(active.intermediate.certPem);
      }
      if (previous) {
        assert.ok(state.sequence >= previous.sequence, `sequence decreased ${previous.sequence} -> ${state.sequence} ${where}`);
        if (bundleKey(state) !== bundleKey(previous)) assert.ok(state.sequence > previous.sequence, `bundle changed without a new sequence ${where}`);
      }
      // Phase history per root: a prefix of prepared -> active -> retiring -> removed.
      const present = new Set(state.roots.map((r) => r.fingerprint));
      for (const r of state.roots) {
        const seen = phasesSeen.get(r.fingerprint) ?? [];
        if (seen.at(-1) !== r.phase) seen.push(r.phase);
        phasesSeen.set(r.fingerprint, seen);
      }
      for (const [fp, seen] of phasesSeen) {
        if (!present.has(fp) && seen.at(-1) !== 'removed') seen.push('removed');
        const start = PHASE_ORDER.indexOf(seen[0] as (typeof PHASE_ORDER)[number]);
        assert.deepEqual(seen, PHASE_ORDER.slice(start, start + seen.length), `root ${fp.slice(0, 12)} went through ${seen.join(' -> ')} ${where}`);
        assert.ok(start <= 1, `root ${fp.slice(0, 12)} entered the bundle as ${seen[0]}`);
      }
      // A leaf with the longest TTL could have been issued right now.
      leaves.push({ notAfter: Math.min(now + MAX_LEAF_TTL, active.intermediate.notAfter), rootFingerprint: active.fingerprint, issuedAt: now });
      for (let i = leaves.length - 1; i >= 0; i--) {
        const leaf = leaves[i]!;
        if (leaf.notAfter + PEER_SKEW <= now) {
          leaves.splice(i, 1);
          continue;
        }
        assert.ok(present.has(leaf.rootFingerprint), `a leaf issued ${new Date(leaf.issuedAt).toISOString()} valid until ${new Date(leaf.notAfter).toISOString()} lost its root ${where}`);
      }
      previous = state;
    },
  };
}

test('two whole root lifetimes on the automatic schedule keep every invariant at every step', () => {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  let state = bootstrapState('cluster.local', clock.now(), LIFE);
  const checker = invariantChecker();
  checker.check(state, clock.now());
  const firstRoot = state.roots[0]!;
  const steps: string[] = [];
  let refusedActivations = 0;
  let renewals = 0;
  // Agents pick up a new bundle 25 days after it is published: 2 days later than the schedule
  // wants to activate (30 d before expiry prepare, 7 d before activate), so activation must wait.
  const propagation = (s: CaState, now: number): PropagationVerdict => {
    const prepared = s.roots.find((r) => r.phase === 'prepared');
    const propagated = prepared !== undefined && now >= prepared.preparedAt + 25 * DAY;
    return { propagated, reason: propagated ? 'all agents hold it' : 'agents still fetching' };
  };
  const end = firstRoot.notAfter + LIFE.rootTtlMs + 45 * DAY;
  let i = 0;
  while (clock.now() < end) {
    // Small, uneven steps so no boundary is always hit exactly.
    clock.advance(i++ % 3 === 0 ? 5 * HOUR + 17 * 60_000 : 7 * HOUR);
    const now = clock.now();
    const renewed = renewIntermediates(state, now, LIFE);
    if (renewed !== state) {
      renewals++;
      state = renewed;
      checker.check(state, now);
    }
    const step = dueStep(state, now);
    if (step === null) {
      checker.check(state, now);
      continue;
    }
    try {
      if (step === 'prepare') state = prepareRoot(state, now, LIFE);
      else if (step === 'activate') state = activateRoot(state, now, { propagation: propagation(state, now), force: false, maxLeafTtlMs: MAX_LEAF_TTL });
      else state = retireRoots(state, now, { force: false });
      steps.push(step);
    } catch (err) {
      assert.ok(isRampartError(err) && err.code === 'RAMPART_ERR_ROTATION_NOT_ALLOWED', String(err));
      assert.equal(step, 'activate', 'only activation may wait (for propagation)');
      assert.match(err.message, /may not have reached every agent yet/);
      refusedActivations++;
    }
    checker.check(state, now);
  }
  // Bootstrap root and two successors went all the way; the third successor is active.
  assert.deepEqual(steps.slice(0, 6), ['prepare', 'activate', 'retire', 'prepare', 'activate', 'retire']);
  assert.deepEqual(checker.phasesSeen.get(firstRoot.fingerprint), ['active', 'retiring', 'removed']);
  const completed = [...checker.phasesSeen.values()].filter((p) => p.join() === 'prepared,active,retiring,removed');
  assert.ok(completed.length >= 1, 'a prepared root went through every phase');
  assert.ok(refusedActivations > 0, 'activation waited for propagation at least once');
  // 30-day intermediates renewed at 2/3 over ~2 years: about 36 renewals across the roots.
  assert.ok(renewals >= 30, `renewed ${renewals} intermediates`);
  assert.ok(state.roots.every((r) => r.generation > 1));
  assert.equal(activeRoot(state)!.generation, 3);
});

test('the schedule prepares at half the root life capped at 30 days and activates at 1/6 capped at 7 days', () => {
  const start = Date.UTC(2026, 0, 1);
  const shortLife: CaLifetimes = { rootTtlMs: 12 * DAY, intermediateTtlMs: 3 * DAY };
  const short = bootstrapState('cluster.local', start, shortLife);
  const root = short.roots[0]!;
  const life = root.notAfter - root.notBefore;
  assert.deepEqual(rotationSchedule(root), { prepareAt: root.notAfter - life / 2, activateAt: root.notAfter - life / 6 });
  const { prepareAt, activateAt } = rotationSchedule(root);
  assert.equal(dueStep(short, prepareAt - 1), null);
  assert.equal(dueStep(short, prepareAt), 'prepare');
  const prepared = prepareRoot(short, prepareAt, shortLife);
  assert.equal(dueStep(prepared, activateAt - 1), null);
  assert.equal(dueStep(prepared, activateAt), 'activate');

  const year = bootstrapState('cluster.local', start, LIFE);
  const yearRoot = year.roots[0]!;
  assert.deepEqual(rotationSchedule(yearRoot), { prepareAt: yearRoot.notAfter - 30 * DAY, activateAt: yearRoot.notAfter - 7 * DAY });
  assert.equal(dueStep(year, yearRoot.notAfter - 30 * DAY - 1), null);
  assert.equal(dueStep(year, yearRoot.notAfter - 30 * DAY), 'prepare');
  const p = prepareRoot(year, yearRoot.notAfter - 30 * DAY, LIFE);
  assert.equal(dueStep(p, yearRoot.notAfter - 7 * DAY - 1), null);
  assert.equal(dueStep(p, yearRoot.notAfter - 7 * DAY), 'activate');
  // While a retiring root is still needed, nothing new is prepared.
  const a = activateRoot(p, yearRoot.notAfter - 7 * DAY, { propagation: { propagated: true, reason: '' }, force: false, maxLeafTtlMs: MAX_LEAF_TTL });
  const retiring = a.roots.find((r) => r.phase === 'retiring')!;
  assert.equal(dueStep(a, retireableAt(retiring) - 1), null);
  assert.equal(dueStep(a, retireableAt(retiring)), 'retire');
});

test('an intermediate already clamped to its root is not renewed again and again near the end', () => {
  const start = Date.UTC(2026, 0, 1);
  const life: CaLifetimes = { rootTtlMs: 10 * DAY, intermediateTtlMs: 6 * DAY };
  let state = bootstrapState('cluster.local', start, life);
  const root = state.roots[0]!;
  state = renewIntermediates(state, start + 5 * DAY, life);
  const inter = state.roots[0]!.intermediate;
  assert.equal(inter.notAfter, root.notAfter, 'renewed intermediate clamped to the root');
  for (let t = start + 8 * DAY; t < root.notAfter; t += HOUR) assert.equal(renewIntermediates(state, t, life), state);
});
