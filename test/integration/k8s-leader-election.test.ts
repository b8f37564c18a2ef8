import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { LeaderElector } from '../../src/k8s/leader-election.js';
import { formatMicroTime } from '../../src/k8s/micro-time.js';

let api: KubeApiServer;
const logger = pino({ level: 'silent' });
const electors: LeaderElector[] = [];
const LEASE_MS = 2000;

before(async () => {
  api = await startKubeApiServer();
});
after(async () => {
  for (const e of electors) await e.stop({ release: false });
  await api.close();
});

function elector(identity: string, namespace: string, events: string[], o: { token?: string; leaseDurationMs?: number; renewDeadlineMs?: number; log?: pino.Logger } = {}): LeaderElector {
  const e = new LeaderElector({
    coordination: api.kubeConfig(o.token).makeApiClient(k8s.CoordinationV1Api),
    namespace,
    identity,
    leaseDurationMs: o.leaseDurationMs ?? LEASE_MS,
    renewDeadlineMs: o.renewDeadlineMs ?? 1500,
    retryPeriodMs: 250,
    logger: o.log ?? logger,
    onStartedLeading: () => events.push(`${identity} started`),
    onStoppedLeading: () => events.push(`${identity} stopped`),
  });
  electors.push(e);
  return e;
}

const readLease = (namespace: string) => api.kubeConfig().makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: 'rampart-ca-leader', namespace });

test('one leader at a time; when it dies the other takes over after the lease expires', async (t) => {
  const events: string[] = [];
  const a = elector('ca-a', 'default', events);
  const b = elector('ca-b', 'default', events);
  a.start();
  await waitFor('a leads', () => a.isLeader);
  b.start();
  // Let a renew a few times while b campaigns: b must not take a held lease.
  const rv = Number((await readLease('default')).metadata?.resourceVersion);
  await waitFor('a renews twice', async () => Number((await readLease('default')).metadata?.resourceVersion) >= rv + 2);
  assert.equal(b.isLeader, false);
  assert.equal(b.leader, 'ca-a');

  const held = await readLease('default');
  assert.equal(held.spec?.holderIdentity, 'ca-a');
  assert.equal(held.spec?.leaseDurationSeconds, 2);
  assert.match(String(held.spec?.renewTime), /\.\d{6}Z$/, 'renewTime is a MicroTime');

  await a.stop({ release: false }); // crash: no release, no more renewals
  const lastRenewal = Date.parse(String((await readLease('default')).spec?.renewTime));
  const killedAt = Date.now();
  await waitFor('b takes over', () => b.isLeader, 10_000);
  const failoverMs = Date.now() - killedAt;
  t.diagnostic(`failover after ${failoverMs} ms with a ${LEASE_MS} ms lease`);
  const taken = await readLease('default');
  assert.equal(taken.spec?.holderIdentity, 'ca-b');
  assert.equal(taken.spec?.leaseTransitions, 1);
  assert.ok(Date.parse(String(taken.spec?.acquireTime)) - lastRenewal >= LEASE_MS, 'b waited for the lease to expire');
  assert.deepEqual(events, ['ca-a started', 'ca-a stopped', 'ca-b started']);
});

test('a leader that stops gracefully releases the lease for an immediate successor', async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-release' } } });
  const events: string[] = [];
  const a = elector('ca-a', 'le-release', events);
  const b = elector('ca-b', 'le-release', events);
  a.start();
  await waitFor('a leads', () => a.isLeader);
  b.start();
  await waitFor('b sees a', () => b.leader === 'ca-a');
  await a.stop();
  assert.equal((await readLease('le-release')).spec?.holderIdentity, '');
  await waitFor('b leads', () => b.isLeader);
  const lease = await readLease('le-release');
  // b took a released lease: it did not need to observe the old one for a whole lease duration.
  assert.equal(lease.spec?.holderIdentity, 'ca-b');
  // client-go counts taking a released Lease as a transition too.
  assert.equal(lease.spec?.leaseTransitions, 1);
});

test('a leader cut off from the API server steps down after the renew deadline', async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-partition' } } });
  const events: string[] = [];
  const a = elector('ca-a', 'le-partition', events);
  a.start();
  await waitFor('a leads', () => a.isLeader);
  await api.goDown();
  try {
    await waitFor('a steps down', () => !a.isLeader, 10_000);
  } finally {
    await api.comeBack();
  }
  assert.deepEqual(events, ['ca-a started', 'ca-a stopped']);
  await waitFor('a leads again once the API server is back', () => a.isLeader, 10_000);
});

test('a leader whose Lease calls hang steps down at the renew deadline, before another takes over, and keeps campaigning', async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-stall' } } });
  // a talks to the API server as its own user, so only a's calls can be made to hang.
  api.addToken('le-stall-a-token', 'le-stall-a');
  const events: string[] = [];
  // The lease outlasts the renew deadline by 2.5 s: a must be gone well before b may take over.
  const a = elector('ca-a', 'le-stall', events, { token: 'le-stall-a-token', leaseDurationMs: 4000 });
  const b = elector('ca-b', 'le-stall', events, { leaseDurationMs: 4000 });
  a.start();
  await waitFor('a leads', () => a.isLeader);
  b.start();
  await waitFor('b sees a', () => b.leader === 'ca-a');

  const stall = api.stall({ resource: 'leases', namespace: 'le-stall', user: 'le-stall-a' });
  try {
    await waitFor('a steps down although its call is still pending', () => !a.isLeader, 10_000);
    // Its hung call was abandoned: it campaigns on, and its next calls hang too.
    await waitFor('a calls again while the API server hangs', () => stall.held >= 2, 10_000);
    await waitFor('b takes the expired Lease', () => b.isLeader, 15_000);
    assert.deepEqual(events, ['ca-a started', 'ca-a stopped', 'ca-b started'], 'a stopped leading before b started: never two leaders');
  } finally {
    stall.release();
  }
  await waitFor('a sees b once the API server answers', () => a.leader === 'ca-b', 10_000);
  assert.equal(a.isLeader, false);
  assert.equal(b.isLeader, true);
  assert.equal((await readLease('le-stall')).spec?.holderIdentity, 'ca-b');
});

test('a Lease call the API server refuses (401) is logged as refused with its status, not as unreachable', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const e = elector('ca-unknown', 'default', [], { token: 'a-token-the-api-server-does-not-know', log });
  e.start();
  const line = await waitFor('a warning about the Lease', () => lines.find((l) => String(l['msg']).startsWith('leader election:')));
  assert.equal(line['status'], 401);
  assert.match(String(line['msg']), /refused the Lease call \(HTTP 401\).*credentials.*RBAC/);
  assert.doesNotMatch(String(line['msg']), /cannot reach/);
});

test('an outage warns once per kind of failure, the repeats at debug, and its end is logged once', async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-quiet-outage' } } });
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const a = elector('ca-a', 'le-quiet-outage', [], { log });
  a.start();
  await waitFor('a leads', () => a.isLeader);
  const about = (level: number): Array<Record<string, unknown>> => lines.filter((l) => l['level'] === level && String(l['msg']).startsWith('leader election:'));
  await api.goDown();
  try {
    // A round every 250 ms: at one warning per round there would be a dozen by now.
    await waitFor('eight failed rounds', () => about(20).length >= 8, 10_000);
  } finally {
    await api.comeBack();
  }
  const warned = about(40);
  assert.ok(warned.length >= 1 && warned.length <= 2, `one warning per kind of failure: ${JSON.stringify(warned)}`);
  const back = await waitFor('the end of the outage logged', () => lines.find((l) => l['msg'] === 'leader election: the Lease can be reached again'), 10_000);
  assert.equal(back['level'], 30);
  assert.ok(Number(back['failedRounds']) >= 9, JSON.stringify(back));
  await waitFor('a leads again', () => a.isLeader, 10_000);
  assert.equal(lines.filter((l) => l['msg'] === 'leader election: the Lease can be reached again').length, 1);
});

test('a leader whose Lease another holder took steps down on seeing it, saying who holds it', async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-taken' } } });
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const events: string[] = [];
  // A long renew deadline: only seeing the new holder can make it step down soon.
  const a = elector('ca-a', 'le-taken', events, { leaseDurationMs: 60_000, renewDeadlineMs: 50_000, log });
  a.start();
  await waitFor('a leads', () => a.isLeader);
  const coordination = api.kubeConfig().makeApiClient(k8s.CoordinationV1Api);
  const lease = await coordination.readNamespacedLease({ name: 'rampart-ca-leader', namespace: 'le-taken' });
  await coordination.replaceNamespacedLease({
    name: 'rampart-ca-leader',
    namespace: 'le-taken',
    body: { ...lease, spec: { ...lease.spec, holderIdentity: 'kubectl-admin', renewTime: formatMicroTime(Date.now()) as unknown as k8s.V1MicroTime } },
  });
  await waitFor('a steps down', () => !a.isLeader, 10_000);
  const stopped = lines.find((l) => l['msg'] === 'stopped leading');
  assert.equal(stopped?.['why'], 'the Lease is held by kubectl-admin');
  assert.deepEqual(events, ['ca-a started', 'ca-a stopped']);
  assert.equal(a.leader, 'kubectl-admin');
  assert.equal((await readLease('le-taken')).spec?.holderIdentity, 'kubectl-admin', 'a did not take it back');
});

test('a Lease call lost on a dead connection costs a leader one round, not its renew deadline', async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-lost-call' } } });
  api.addToken('le-lost-call-token', 'le-lost-call-a');
  const events: string[] = [];
  const a = elector('ca-a', 'le-lost-call', events, { token: 'le-lost-call-token', leaseDurationMs: 9000, renewDeadlineMs: 6000 });
  a.start();
  await waitFor('a leads', () => a.isLeader);
  const stall = api.stall({ resource: 'leases', namespace: 'le-lost-call', user: 'le-lost-call-a' });
  try {
    // The first held call is given up after half the renew deadline and the next round asks again.
    await waitFor('a second call while the first is held', () => stall.held >= 2, 10_000);
    assert.equal(a.isLeader, true, 'still leading when it asks again');
  } finally {
    // Only the call still waiting is answered: the first one's client went away.
    stall.release();
  }
  const renewed = String((await readLease('le-lost-call')).spec?.renewTime);
  await waitFor('a renews again', async () => String((await readLease('le-lost-call')).spec?.renewTime) !== renewed, 10_000);
  assert.deepEqual(events, ['ca-a started'], 'it never stepped down');
});

test('a leader stopped while its Lease calls hang hands the Lease back within its release timeout, not its renew deadline', { timeout: 20_000 }, async () => {
  await api.kubeConfig().makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'le-stop-hung' } } });
  api.addToken('le-stop-hung-token', 'le-stop-hung-a');
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  // A 40 s renew deadline: a release bounded by it outlasted a pod's 30 s grace period.
  const a = elector('ca-a', 'le-stop-hung', [], { token: 'le-stop-hung-token', leaseDurationMs: 60_000, renewDeadlineMs: 40_000, log });
  a.start();
  await waitFor('a leads', () => a.isLeader);
  const stall = api.stall({ resource: 'leases', namespace: 'le-stop-hung', user: 'le-stop-hung-a' });
  try {
    await waitFor('a Lease call held', () => stall.held >= 1);
    // Resolves while the API server still answers nothing: the release gave up on its own.
    await a.stop();
    assert.equal(a.isLeader, false);
    assert.ok(lines.some((l) => l['msg'] === 'could not release the Lease; a successor will take it after it expires'), JSON.stringify(lines));
    const stopped = lines.filter((l) => l['msg'] === 'stopped leading');
    assert.deepEqual(stopped.map((l) => l['why']), ['stopped'], 'no missed renew deadline reported while stopping');
  } finally {
    stall.release();
  }
});
