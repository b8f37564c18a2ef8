/** Crash safety of the `activate` step: a SIGKILL before or after the state is saved loses nothing. */
import { test } from 'node:test';
import { crashAndRecover } from './rotation-crash-support.js';

test('crash at activate, before and after the save: the CA restarts and the rotation completes', { concurrency: true }, async (t) => {
  await Promise.all([
    t.test('activate:before-save', () => crashAndRecover('activate:before-save')),
    t.test('activate:after-save', () => crashAndRecover('activate:after-save')),
  ]);
});
