/** Crash safety of the `bootstrap` step: a SIGKILL before or after the state is saved loses nothing. */
import { test } from 'node:test';
import { crashAndRecover } from './rotation-crash-support.js';

test('crash at bootstrap, before and after the save: the CA restarts and the rotation completes', { concurrency: true }, async (t) => {
  await Promise.all([
    t.test('bootstrap:before-save', () => crashAndRecover('bootstrap:before-save')),
    t.test('bootstrap:after-save', () => crashAndRecover('bootstrap:after-save')),
  ]);
});
