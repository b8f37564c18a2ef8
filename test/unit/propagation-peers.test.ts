/** Propagation judged over several CA replicas' agent sightings (DESIGN section 4, Kubernetes replicas). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SHARED_BEHIND, PropagationTracker, type PeerSightings } from '../../src/core/ca/propagation.js';

const T0 = Date.UTC(2026, 0, 1);
const INTERVAL = 60_000;

test('an agent a peer replica saw behind holds propagation back; the local view alone would pass', () => {
  const local = new PropagationTracker();
  local.report('spiffe://td/ns/a/sa/one', 5, T0);
  const peer = new PropagationTracker();
  peer.report('spiffe://td/ns/b/sa/two', 4, T0 + 1_000);
  peer.report('spiffe://td/ns/b/sa/three', 5, T0 + 1_000);
  const now = T0 + 2 * INTERVAL - 10_000;
  const shared = peer.share('ca-b', 5, now, INTERVAL);
  assert.deepEqual(shared.behind, [{ agent: 'spiffe://td/ns/b/sa/two', sequence: 4, lastSeen: T0 + 1_000 }]);
  assert.equal(shared.agentsSeen, 2);

  assert.equal(local.status(5, T0 - INTERVAL, now, INTERVAL).propagated, true, 'alone, this replica sees only up-to-date agents');
  const merged = local.status(5, T0 - INTERVAL, now, INTERVAL, [shared]);
  assert.equal(merged.propagated, false);
  assert.equal(merged.agentsSeen, 3);
  assert.equal(merged.agentsUpToDate, 2);
  assert.match(merged.reason, /^2 of 3 agents seen recently by 2 CA replicas hold bundle sequence 5 \(behind: spiffe:\/\/td\/ns\/b\/sa\/two \(1 agent\)\)$/);
  // A target the behind agent already holds is not held back.
  assert.equal(local.status(4, T0 - INTERVAL, now, INTERVAL, [shared]).propagated, true);
});

test('a peer sighting or a whole peer older than two refresh intervals is left out; an agent seen behind on both replicas counts once', () => {
  const local = new PropagationTracker();
  local.report('agent-x', 3, T0);
  const stalePeer: PeerSightings = { replica: 'ca-gone', updatedAt: T0 - 3 * INTERVAL, agentsSeen: 4, behind: [{ agent: 'agent-y', sequence: 1, lastSeen: T0 - 3 * INTERVAL }], behindOmitted: 0 };
  const livePeer: PeerSightings = {
    replica: 'ca-b',
    updatedAt: T0,
    agentsSeen: 2,
    behind: [
      { agent: 'agent-x', sequence: 3, lastSeen: T0 },
      { agent: 'agent-old', sequence: 2, lastSeen: T0 - 3 * INTERVAL },
    ],
    behindOmitted: 0,
  };
  const s = local.status(4, T0 - INTERVAL, T0 + 1_000, INTERVAL, [stalePeer, livePeer]);
  assert.equal(s.agentsSeen, 3);
  assert.equal(s.agentsUpToDate, 2, 'agent-x is one agent behind, seen by both replicas; agent-old has left the horizon');
  assert.match(s.reason, /by 2 CA replicas/);
});

test('behind agents beyond the shared cap are counted as behind', () => {
  const peer = new PropagationTracker();
  for (let i = 0; i < MAX_SHARED_BEHIND + 3; i++) peer.report(`agent-${i}`, 1, T0);
  const shared = peer.share('ca-b', 2, T0, INTERVAL);
  assert.equal(shared.behind.length, MAX_SHARED_BEHIND);
  assert.equal(shared.behindOmitted, 3);
  const s = new PropagationTracker().status(2, T0 - INTERVAL, T0, INTERVAL, [shared]);
  assert.equal(s.agentsSeen, MAX_SHARED_BEHIND + 3);
  assert.equal(s.agentsUpToDate, 0);
  assert.equal(s.propagated, false);
});
