import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertFlagsRefused as refused, loadWithFlags as load } from '../helpers/ca-config-flags.js';

test('leader-election timings in order are taken; derived ones follow a given lease duration', () => {
  assert.deepEqual(load({ 'lease-duration': '5s', 'renew-deadline': '4s', 'retry-period': '1s' }).kubernetes.leaderElection, { leaseDurationMs: 5000, renewDeadlineMs: 4000, retryPeriodMs: 1000 });
  assert.deepEqual(load({ 'lease-duration': '3s' }).kubernetes.leaderElection, { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 });
});

test('a renew deadline not under the lease duration is refused naming both settings and their values', () => {
  refused({ 'lease-duration': '5s', 'renew-deadline': '6s' }, /^--renew-deadline \(6s\) must be shorter than --lease-duration \(5s\)/);
  refused({ 'renew-deadline': '20s' }, /^--renew-deadline \(20s\) must be shorter than --lease-duration \(15s, its default\)/);
});

test('a retry period not under the renew deadline, and a lease under 1s, are refused naming the values', () => {
  refused({ 'lease-duration': '10s', 'renew-deadline': '2s', 'retry-period': '3s' }, /^--retry-period \(3s\) must be shorter than --renew-deadline \(2s\)/);
  refused({ 'lease-duration': '500ms', 'renew-deadline': '400ms', 'retry-period': '100ms' }, /^--lease-duration \(0\.5s\) must be at least 1s/);
});

test('timings from the config file are named by their config keys', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-lease-timings-'));
  try {
    const file = join(dir, 'ca.json');
    writeFileSync(file, JSON.stringify({ kubernetes: { leaseDuration: '5s', renewDeadline: '6s' } }));
    refused({ config: file }, /^config "kubernetes\.renewDeadline" \(6s\) must be shorter than config "kubernetes\.leaseDuration" \(5s\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a renew deadline longer than a node timer can wait is refused (fuzz finding)', () => {
  // Seeded config campaign (seed 0xc0f): with --renew-deadline 25d the deadline timer fired at
  // once (TimeoutOverflowWarning), aborting every Lease call, and a retry period as long looped.
  refused({ 'lease-duration': '30d', 'renew-deadline': '25d' }, /^--renew-deadline \(2160000s\) must be at most 2147483\.647s \(24\.8 days\)/);
  refused({ 'lease-duration': '30d', 'renew-deadline': '25d', 'retry-period': '24d' }, /^--renew-deadline \(2160000s\) must be at most/);
  assert.deepEqual(load({ 'lease-duration': '30d', 'renew-deadline': '24d', 'retry-period': '1d' }).kubernetes.leaderElection, { leaseDurationMs: 2_592_000_000, renewDeadlineMs: 2_073_600_000, retryPeriodMs: 86_400_000 });
});
