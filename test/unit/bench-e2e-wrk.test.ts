/** The e2e figure from wrk's report counts certificates, not answers (outside audit of the bench). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWrk } from '../../bench/e2e-wrk.js';

const report = (non2xx: string): string => `Running 5s test @ https://127.0.0.1:38465
  1 threads and 64 connections
  Latency Distribution
     50%   18.88ms
     75%   25.00ms
     90%   35.00ms
     99%   74.09ms
  6966 requests in 5.06s, 10.00MB read
${non2xx}Requests/sec:   1376.00
Transfer/sec:      1.98MB
`;

test('answers that are not 2xx are neither certificates nor counted in the rate', () => {
  const r = parseWrk(report('  Non-2xx or 3xx responses: 872\n'), 64);
  assert.equal(r.ok, 6094);
  assert.equal(r.failures, 872);
  assert.equal(r.certsPerSecond, 1204); // 6094 / 5.06 s, where wrk says 1376 requests/s
  assert.equal(r.p50Ms, 18.88);
  assert.equal(r.p99Ms, 74.09);
});

test('with every answer a 2xx the rate is the answers over the duration, and the report is kept', () => {
  const text = report('');
  const r = parseWrk(text, 64);
  assert.equal(r.certsPerSecond, 1377);
  assert.equal(r.failures, 0);
  assert.equal(r.wrkReport, text);
});
