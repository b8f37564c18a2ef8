/**
 * A cluster worker's replica of the CA state: admin calls it forwards to the primary get a
 * coded NOT_READY when the worker stops before the primary answers (the primary died or asked
 * the worker to stop), instead of hanging until the process exits under them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRampartError } from '../../src/core/errors.js';
import { systemClock } from '../../src/core/clock.js';
import { DEFAULT_TTL_POLICY } from '../../src/core/ca/policy.js';
import { ReplicaRuntime } from '../../src/runtime/replica-runtime.js';
import type { WorkerMessage } from '../../src/runtime/cluster-messages.js';

const TTL = DEFAULT_TTL_POLICY;

test('admin calls waiting on the primary are refused with RAMPART_ERR_NOT_READY when the replica stops', async () => {
  const sent: WorkerMessage[] = [];
  const replica = new ReplicaRuntime((m) => sent.push(m), TTL, systemClock);
  const retire = replica.retire(true);
  const status = replica.status();
  assert.deepEqual(
    sent.filter((m) => m.t === 'rampart-admin').map((m) => m.t === 'rampart-admin' && m.op),
    ['retire', 'status'],
  );
  replica.stop();
  for (const call of [retire, status]) {
    await assert.rejects(call, (e: unknown) => isRampartError(e) && e.code === 'RAMPART_ERR_NOT_READY' && e.retryAfterSeconds === 1);
  }
});
