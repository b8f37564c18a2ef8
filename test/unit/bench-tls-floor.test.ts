import assert from 'node:assert/strict';
import { test } from 'node:test';
import { handshakeSeconds } from '../../bench/tls-floor.js';

test('TLS floor: both sides of every handshake share the cores', () => {
  // 10,000 agents × (0.9 + 1.8) ms = 27 CPU s; on 2 cores at best 13.5 s.
  assert.equal(handshakeSeconds(10_000, 0.9, 1.8, 2), 13.5);
  assert.equal(handshakeSeconds(10_000, 0.9, 1.8, 1), 27);
  // A machine that reports no cores still gives a figure rather than Infinity.
  assert.equal(handshakeSeconds(1000, 1, 1, 0), 2);
});
