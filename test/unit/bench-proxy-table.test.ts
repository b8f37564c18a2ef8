import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { parseHarnessTables, proxyKey } from '../../bench/proxy-table.js';

const SAMPLE = `
proxy      | keepalive req/s |      p50 |      p99 | new-conn req/s |      p50 |      p99
-----------+-----------------+----------+----------+----------------+----------+---------
direct     |           27858 |    0.219 |    7.390 |           9158 |    0.753 |   11.520
rampart-plain-tls |            2874 |    4.460 |  115.470 |            211 |   70.140 |  189.100

proxy      | side     |     pid |    VmRSS |    VmHWM | threads | CPU ms/1k keepalive | CPU ms/1k new-conn
rampart-plain-tls | inbound  |    1294 |    64776 |    65200 |      11 |               52.8 |             911.2
rampart-plain-tls | outbound |    1321 |    66056 |    66456 |      11 |               71.0 |             933.9
`;

test('harness tables become per-proxy figures with the larger side RSS in MB', () => {
  const f = parseHarnessTables(SAMPLE, ['direct', 'rampart-plain-tls']);
  assert.deepEqual(f['direct'], { keepaliveRps: 27858, keepaliveP99Ms: 7.39, newConnRps: 9158, newConnP99Ms: 11.52, rssMb: null });
  assert.deepEqual(f['rampartPlainTls'], { keepaliveRps: 2874, keepaliveP99Ms: 115.47, newConnRps: 211, newConnP99Ms: 189.1, rssMb: 64.5 });
});

test('kinds not asked for are ignored and names become camelCase keys', () => {
  assert.deepEqual(Object.keys(parseHarnessTables(SAMPLE, ['direct'])), ['direct']);
  assert.equal(proxyKey('rampart-plain-tls'), 'rampartPlainTls');
});
