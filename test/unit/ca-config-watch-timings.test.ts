import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertFlagsRefused as refused, loadWithFlags as load } from '../helpers/ca-config-flags.js';

test('watch timeout and state check interval: absent means the defaults of the store and publisher; given ones are taken', () => {
  const k = load({}).kubernetes;
  assert.equal(k.watchTimeoutMs, undefined);
  assert.equal(k.stateCheckIntervalMs, undefined);
  const given = load({ 'watch-timeout': '2m', 'state-check-interval': '10s' }).kubernetes;
  assert.equal(given.watchTimeoutMs, 120_000);
  assert.equal(given.stateCheckIntervalMs, 10_000);
});

test('outside 1s to 1h, or not a duration, they are refused by name', () => {
  refused({ 'watch-timeout': '500ms' }, /^--watch-timeout must be between 1s and 1h, got 500ms/);
  refused({ 'state-check-interval': '2h' }, /^--state-check-interval must be between 1s and 1h, got 2h/);
  refused({ 'watch-timeout': 'soon' }, /^--watch-timeout "soon" is not a duration/);
  refused({ 'state-check-interval': '0s' }, /^--state-check-interval "0s" must be more than zero/);
  refused({ 'watch-timeout': '1500ms' }, /^--watch-timeout must be whole seconds, as the API server's timeoutSeconds, got 1500 ms/);
  assert.equal(load({ 'state-check-interval': '1500ms' }).kubernetes.stateCheckIntervalMs, 1500, 'the check is a timer of ours: any duration');
});

test('from the config file they are named by their config keys; flags win over them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-watch-timings-'));
  try {
    const file = join(dir, 'ca.json');
    writeFileSync(file, JSON.stringify({ kubernetes: { watchTimeout: '30s', stateCheckInterval: '3h' } }));
    refused({ config: file }, /^config "kubernetes\.stateCheckInterval" must be between 1s and 1h, got 3h/);
    writeFileSync(file, JSON.stringify({ kubernetes: { watchTimeout: '30s', stateCheckInterval: '20s' } }));
    assert.equal(load({ config: file }).kubernetes.watchTimeoutMs, 30_000);
    assert.equal(load({ config: file, 'state-check-interval': '5s' }).kubernetes.stateCheckIntervalMs, 5_000);
    writeFileSync(file, JSON.stringify({ kubernetes: { watchTimeout: 30 } }));
    assert.throws(() => load({ config: file }), /watchTimeout/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
