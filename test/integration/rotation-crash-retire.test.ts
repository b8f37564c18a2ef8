/** Crash safety of the `retire` step: a SIGKILL before or after the state is saved loses nothing. */
import { test } from 'node:test';
import { crashAndRecover } from './rotation-crash-support.js';

test('crash at retire, before and after the save: the CA restarts and the rotation completes', { concurrency: true }, async (t) => {
  await Promise.all([
    t.test('retire:before-save', () => crashAndRecover('retire:before-save')),
    t.test('retire:after-save', () => crashAndRecover('retire:after-save')),
  ]);
});
