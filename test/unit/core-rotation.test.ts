/** Root rotation as pure transitions (core/ca/rotation.ts) on a fake clock: refusals, sequence, bundle. */
import { test } from 'node:test';
import { isRampartError } from '../../src/core/errors.js';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { ConflictError } from '../../src/core/errors.js';
import {
  activateRoot,
  activeRoot,
  automaticSchedule,
  bootstrapState,
  dueStep,
  intermediateRenewalAt,
  intermediateRenewalDue,
  prepareRoot,
  renewIntermediates,
  replacePluggedIntermediate,
  retireableAt,
  retireRoots,
  rotationSchedule,
  type CaLifetimes,
  type PluggedCa,
} from '../../src/core/ca/rotation.js';
import { bundleFromState } from '../../src/core/ca/trust-bundle.js';
import type { CaState } from '../../src/core/ports.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 0, 1);
const LIFE: CaLifetimes = { rootTtlMs: 12 * DAY, intermediateTtlMs: 3 * DAY };
const PROPAGATED = { propagated: true, reason: 'all agents current' };
const NOT_PROPAGATED = { propagated: false, reason: '1 of 3 agents still hold sequence 1' };

function refused(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConflictError, `expected ConflictError, got ${String(err)}`);
    assert.equal(err.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
    assert.match(err.message, message);
    return true;
  });
}

const phases = (s: CaState): string[] => s.roots.map((r) => `${r.generation}:${r.phase}`);

test('bootstrap: one active generated root, sequence 1, intermediate under it', () => {
  const s = bootstrapState('cluster.local', T0, LIFE);
  assert.equal(s.sequence, 1);
  assert.equal(s.nextGeneration, 2);
  assert.deepEqual(phases(s), ['1:active']);
  const root = activeRoot(s);
  assert.ok(root);
  assert.equal(root.notAfter, T0 + 12 * DAY);
  assert.equal(root.intermediate.notAfter, T0 + 3 * DAY);
  const rootCert = new X509Certificate(root.certPem);
  const interCert = new X509Certificate(root.intermediate.certPem);
  assert.ok(interCert.checkIssued(rootCert));
  assert.ok(interCert.verify(rootCert.publicKey));
  assert.equal(bundleFromState(s).roots.length, 1);
});

test('prepare adds a root in phase prepared with a new subject; a second prepare is refused', () => {
  const s1 = bootstrapState('cluster.local', T0, LIFE);
  const s2 = prepareRoot(s1, T0 + HOUR, LIFE);
  assert.equal(s2.sequence, 2);
  assert.deepEqual(phases(s2), ['1:active', '2:prepared']);
  assert.equal(s2.roots[1]?.addedAtSequence, 2);
  assert.notEqual(new X509Certificate(s2.roots[0]?.certPem ?? '').subject, new X509Certificate(s2.roots[1]?.certPem ?? '').subject, 'successive roots never share a subject');
  assert.equal(s1.sequence, 1, 'the input state is not mutated');
  refused(() => prepareRoot(s2, T0 + 2 * HOUR, LIFE), /already prepared.*activate it before preparing another/);
});

test('activate: refused with nothing prepared, refused before propagation, allowed with force or once propagated', () => {
  const s1 = bootstrapState('cluster.local', T0, LIFE);
  refused(() => activateRoot(s1, T0, { propagation: PROPAGATED, force: false, maxLeafTtlMs: DAY }), /no root is prepared; run `rampart root prepare` first/);
  const s2 = prepareRoot(s1, T0, LIFE);
  refused(() => activateRoot(s2, T0 + HOUR, { propagation: NOT_PROPAGATED, force: false, maxLeafTtlMs: DAY }), /may not have reached every agent yet: 1 of 3 agents still hold sequence 1; retry then, or use --force/);
  const forced = activateRoot(s2, T0 + HOUR, { propagation: NOT_PROPAGATED, force: true, maxLeafTtlMs: DAY });
  assert.deepEqual(phases(forced), ['1:retiring', '2:active']);
  const s3 = activateRoot(s2, T0 + HOUR, { propagation: PROPAGATED, force: false, maxLeafTtlMs: DAY });
  assert.equal(s3.sequence, 3);
  assert.deepEqual(phases(s3), ['1:retiring', '2:active']);
  assert.equal(s3.roots[0]?.signingEndedAt, T0 + HOUR);
  assert.equal(s3.roots[0]?.maxLeafTtlMs, DAY);
  assert.equal(s3.roots[1]?.activatedAt, T0 + HOUR);
  assert.equal(activeRoot(s3)?.generation, 2);
});

test('activate is refused when the prepared intermediate has expired, even with force', () => {
  const s2 = prepareRoot(bootstrapState('cluster.local', T0, LIFE), T0, LIFE);
  refused(() => activateRoot(s2, T0 + 3 * DAY, { propagation: PROPAGATED, force: true, maxLeafTtlMs: DAY }), /intermediate (has )?expired.*prepare a new root/);
});

test('retire: refused with nothing retiring, refused until every leaf expired, allowed then or with force', () => {
  const s1 = bootstrapState('cluster.local', T0, LIFE);
  refused(() => retireRoots(s1, T0, { force: true }), /no root is retiring; activate a prepared root first/);
  const s3 = activateRoot(prepareRoot(s1, T0, LIFE), T0 + HOUR, { propagation: PROPAGATED, force: false, maxLeafTtlMs: DAY });
  const retiring = s3.roots[0];
  assert.ok(retiring);
  const at = retireableAt(retiring);
  // Not before the last possible leaf (signing end + max leaf TTL) has expired; a small skew margin is allowed.
  assert.ok(at >= T0 + HOUR + DAY, `retireable at ${new Date(at).toISOString()}`);
  assert.ok(at <= T0 + HOUR + DAY + HOUR, `retireable at ${new Date(at).toISOString()}`);
  const iso = new Date(at).toISOString().replace(/\./g, '\\.');
  refused(() => retireRoots(s3, at - 1000, { force: false }), new RegExp(`may be valid until ${iso} \\(in 1s\\); retire then, or use --force`));
  refused(() => retireRoots(s3, T0 + HOUR + DAY - 1, { force: false }), /retire then, or use --force/);
  const s4 = retireRoots(s3, at, { force: false });
  assert.equal(s4.sequence, 4);
  assert.deepEqual(phases(s4), ['2:active']);
  const forced = retireRoots(s3, T0 + 2 * HOUR, { force: true });
  assert.deepEqual(phases(forced), ['2:active']);
});

test('retire never empties the bundle, even with force', () => {
  const s1 = bootstrapState('cluster.local', T0, LIFE);
  const root = s1.roots[0];
  assert.ok(root);
  const onlyRetiring: CaState = { ...s1, roots: [{ ...root, phase: 'retiring', signingEndedAt: T0, maxLeafTtlMs: HOUR }] };
  refused(() => retireRoots(onlyRetiring, T0 + DAY, { force: true }), /would leave the trust bundle empty/);
});

test('automatic schedule: prepare at half life (at most 30 d before expiry), activate at 1/6 (at most 7 d)', () => {
  const s = bootstrapState('cluster.local', T0, LIFE);
  const root = activeRoot(s);
  assert.ok(root);
  const sched = rotationSchedule(root);
  const life = root.notAfter - root.notBefore;
  assert.equal(sched.prepareAt, root.notAfter - life / 2);
  assert.equal(sched.activateAt, root.notAfter - life / 6);
  const year = bootstrapState('cluster.local', T0, { rootTtlMs: 365 * DAY, intermediateTtlMs: 30 * DAY });
  const yearRoot = activeRoot(year);
  assert.ok(yearRoot);
  assert.deepEqual(rotationSchedule(yearRoot), { prepareAt: yearRoot.notAfter - 30 * DAY, activateAt: yearRoot.notAfter - 7 * DAY });

  assert.equal(dueStep(s, sched.prepareAt - 1), null);
  assert.equal(dueStep(s, sched.prepareAt), 'prepare');
  const s2 = prepareRoot(s, sched.prepareAt, LIFE);
  assert.equal(dueStep(s2, sched.activateAt - 1), null);
  assert.equal(dueStep(s2, sched.activateAt), 'activate');
  // The prepared root's intermediate (3 d) is renewed on the way, as the runtime's tick does.
  const s3 = activateRoot(renewIntermediates(s2, sched.activateAt, LIFE), sched.activateAt, { propagation: PROPAGATED, force: false, maxLeafTtlMs: DAY });
  const retiring = s3.roots.find((r) => r.phase === 'retiring');
  assert.ok(retiring);
  assert.equal(dueStep(s3, sched.activateAt + DAY - 1), null, 'retire waits for the old leaves');
  assert.equal(dueStep(s3, retireableAt(retiring) - 1), null);
  assert.equal(dueStep(s3, retireableAt(retiring)), 'retire');
});

test('intermediate renewal at 2/3 of its life; the same state object when nothing is due', () => {
  const s = bootstrapState('cluster.local', T0, LIFE);
  const inter = activeRoot(s)?.intermediate;
  assert.ok(inter);
  const renewAt = inter.notBefore + ((inter.notAfter - inter.notBefore) * 2) / 3;
  assert.equal(intermediateRenewalDue(inter, renewAt - 1), false);
  assert.equal(intermediateRenewalDue(inter, renewAt), true);
  assert.equal(renewIntermediates(s, renewAt - 1, LIFE), s);
  const renewed = renewIntermediates(s, renewAt, LIFE);
  assert.notEqual(renewed, s);
  assert.equal(renewed.sequence, s.sequence, 'a new intermediate does not change the bundle');
  assert.notEqual(activeRoot(renewed)?.intermediate.certPem, inter.certPem);
  assert.equal(activeRoot(renewed)?.certPem, activeRoot(s)?.certPem);
  // A retiring root's intermediate is never renewed: it signs nothing any more.
  const s3 = activateRoot(prepareRoot(s, T0, LIFE), T0 + HOUR, { propagation: PROPAGATED, force: false, maxLeafTtlMs: DAY });
  const later = renewIntermediates(s3, renewAt, LIFE);
  assert.equal(later.roots[0]?.intermediate.certPem, s3.roots[0]?.intermediate.certPem);
});

test('over many rotation cycles the sequence only grows and the bundle is never empty', () => {
  let state = bootstrapState('cluster.local', T0, LIFE);
  let now = T0;
  const seen: number[] = [state.sequence];
  const steps = ['prepare', 'retire', 'activate', 'activate', 'retire', 'prepare', 'prepare', 'activate', 'retire', 'retire'] as const;
  for (let round = 0; round < 3; round++) {
    for (const step of steps) {
      now += 13 * HOUR;
      const before = state;
      try {
        if (step === 'prepare') state = prepareRoot(state, now, LIFE);
        else if (step === 'activate') state = activateRoot(state, now, { propagation: PROPAGATED, force: false, maxLeafTtlMs: HOUR });
        else state = retireRoots(state, now, { force: false });
        assert.equal(state.sequence, before.sequence + 1, `${step} grows the sequence by one`);
      } catch (err) {
        assert.ok(err instanceof ConflictError, String(err));
        assert.equal(state, before, 'a refused step changes nothing');
      }
      state = renewIntermediates(state, now, LIFE);
      assert.ok(state.roots.length >= 1, 'bundle never empty');
      assert.equal(state.roots.filter((r) => r.phase === 'active').length, 1, 'exactly one signer');
      assert.ok(state.sequence >= (seen[seen.length - 1] ?? 0));
      seen.push(state.sequence);
    }
  }
  assert.ok(state.nextGeneration > 4, 'several generations were created');
  const generations = state.roots.map((r) => r.generation);
  assert.equal(new Set(generations).size, generations.length);
});

test('a plugged-in root takes the intermediate the operator supplies; nothing else does', () => {
  const generated = bootstrapState('cluster.local', T0, LIFE);
  const root = generated.roots[0]!;
  const s: CaState = { ...generated, roots: [{ ...root, plugged: true, keyPem: null }] };
  const supplied = { certPem: 'renewed-cert', keyPem: 'renewed-key', notBefore: T0, notAfter: T0 + 2 * DAY, chainPems: [] };
  const plugged: PluggedCa = { rootCertPem: root.certPem, rootFingerprint: root.fingerprint, rootNotBefore: root.notBefore, rootNotAfter: root.notAfter, intermediate: supplied };

  const replaced = replacePluggedIntermediate(s, plugged, T0 + HOUR);
  assert.deepEqual(replaced.roots[0]?.intermediate, supplied);
  assert.equal(replaced.sequence, s.sequence, 'same root, same bundle');
  assert.equal(replacePluggedIntermediate(replaced, plugged, T0 + HOUR), replaced, 'unchanged files change nothing');
  assert.equal(replacePluggedIntermediate(s, plugged, T0 + 3 * DAY), s, 'an expired intermediate is never taken');
  assert.equal(replacePluggedIntermediate(generated, plugged, T0 + HOUR), generated, 'a generated root renews its own');
  assert.equal(replacePluggedIntermediate(s, { ...plugged, rootFingerprint: 'f'.repeat(64) }, T0 + HOUR), s, 'another root');
  const retiring: CaState = { ...s, roots: [{ ...s.roots[0]!, phase: 'retiring' }] };
  assert.equal(replacePluggedIntermediate(retiring, plugged, T0 + HOUR), retiring, 'a retiring root signs nothing');
});

test('after a plugged-in active root the schedule prepares nothing and renews no intermediate, but still activates a prepared root', () => {
  const generated = bootstrapState('cluster.local', T0, LIFE);
  const root = generated.roots[0]!;
  const s: CaState = { ...generated, roots: [{ ...root, plugged: true, keyPem: null }] };
  const { prepareAt, activateAt } = rotationSchedule(root);
  assert.deepEqual(automaticSchedule(s.roots[0]!), { prepareAt: null, activateAt });
  assert.deepEqual(automaticSchedule(root), { prepareAt, activateAt });
  assert.equal(dueStep(s, prepareAt), null);
  assert.equal(dueStep(s, root.notAfter - 1), null);
  assert.equal(dueStep(generated, prepareAt), 'prepare');
  assert.equal(intermediateRenewalAt(s.roots[0]!), null);
  assert.equal(intermediateRenewalAt(root), root.intermediate.notBefore + ((root.intermediate.notAfter - root.intermediate.notBefore) * 2) / 3);
  // The operator's next plugged-in root, prepared meanwhile, is activated on time.
  const next = bootstrapState('cluster.local', T0, LIFE).roots[0]!;
  const nextFiles: PluggedCa = { rootCertPem: next.certPem, rootFingerprint: next.fingerprint, rootNotBefore: next.notBefore, rootNotAfter: next.notAfter, intermediate: next.intermediate };
  const prepared = prepareRoot(s, T0 + HOUR, LIFE, nextFiles);
  assert.equal(prepared.roots[1]?.plugged, true);
  assert.equal(dueStep(prepared, activateAt - 1), null);
  assert.equal(dueStep(prepared, activateAt), 'activate');
  // An admin's prepare would generate a root here, under a key the operator never chose: refused (outside QA).
  assert.throws(
    () => prepareRoot(s, T0 + HOUR, LIFE),
    (err: unknown) => isRampartError(err) && err.code === 'RAMPART_ERR_ROTATION_NOT_ALLOWED' && /plugged-in CA \(--plugged-ca\) and does not create roots/.test(err.message),
  );
  assert.equal(prepareRoot(generated, T0 + HOUR, LIFE).roots[1]?.plugged, false, 'a generated CA still prepares its own');
});
