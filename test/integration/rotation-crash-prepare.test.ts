/** Crash safety of the `prepare` step: a SIGKILL before or after the state is saved loses nothing. */
import { test } from 'node:test';
import { crashAndRecover } from './rotation-crash-support.js';

test('crash at prepare, before and after the save: the CA restarts and the rotation completes', { concurrency: true }, async (t) => {
  await Promise.all([
    t.test('prepare:before-save', () => crashAndRecover('prepare:before-save')),
    t.test('prepare:after-save', () => crashAndRecover('prepare:after-save')),
  ]);
});
