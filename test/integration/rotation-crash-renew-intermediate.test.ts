/** Crash safety of the `renew-intermediate` step: a SIGKILL before or after the state is saved loses nothing. */
import { test } from 'node:test';
import { crashAndRecover } from './rotation-crash-support.js';

test('crash at renew-intermediate, before and after the save: the CA restarts and the rotation completes', { concurrency: true }, async (t) => {
  await Promise.all([
    t.test('renew-intermediate:before-save', () => crashAndRecover('renew-intermediate:before-save', { 'intermediate-ttl': '36s' })),
    t.test('renew-intermediate:after-save', () => crashAndRecover('renew-intermediate:after-save', { 'intermediate-ttl': '36s' })),
  ]);
});
