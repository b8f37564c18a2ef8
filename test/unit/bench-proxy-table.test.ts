import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { combinePasses, parseHarnessTables, proxyKey } from '../../bench/proxy-table.js';
import { median } from '../../bench/stats.js';

const SAMPLE = `
proxy      | keepalive req/s |      p50 |      p99 | new-conn req/s |      p50 |      p99
-----------+-----------------+----------+----------+----------------+----------+---------
direct     |           27858 |    0.219 |    7.390 |           9158 |    0.753 |   11.520
rampart-plain-tls |            2874 |    4.460 |  115.470 |            211 |   70.140 |  189.100

proxy      | side     |     pid |    VmRSS |    VmHWM | threads | CPU ms/1k keepalive | CPU ms/1k new-conn
rampart-plain-tls | inbound  |    1294 |    64776 |    65200 |      11 |               52.8 |             911.2
rampart-plain-tls | outbound |    1321 |    66056 |    66456 |      11 |               71.0 |             933.9

wrk reported socket errors or non-2xx responses:
  rampart-plain-tls: wrk errors keep-alive 0, new-conn 12
`;

test('harness tables become per-proxy figures with the larger side RSS in MB (10^6 bytes) and MiB', () => {
  const f = parseHarnessTables(SAMPLE, ['direct', 'rampart-plain-tls']);
  assert.deepEqual(f['direct'], { keepaliveRps: 27858, keepaliveP99Ms: 7.39, newConnRps: 9158, newConnP99Ms: 11.52, rssMb: null, rssMiB: null, peakRssMb: null, wrkErrors: { keepalive: 0, newConn: 0 } });
  // /proc's 66,056 "kB" are KiB: 67.6 MB, 64.5 MiB (the bench read MiB as MB; outside audit).
  // The peak is the larger side's VmHWM: 66,456 KiB, 68.1 MB.
  // The harness lists wrk's socket errors and non-2xx answers apart from the table (outside audit).
  assert.deepEqual(f['rampartPlainTls'], { keepaliveRps: 2874, keepaliveP99Ms: 115.47, newConnRps: 211, newConnP99Ms: 189.1, rssMb: 67.6, rssMiB: 64.5, peakRssMb: 68.1, wrkErrors: { keepalive: 0, newConn: 12 } });
});

test('kinds not asked for are ignored and names become camelCase keys', () => {
  assert.deepEqual(Object.keys(parseHarnessTables(SAMPLE, ['direct'])), ['direct']);
  assert.equal(proxyKey('rampart-plain-tls'), 'rampartPlainTls');
});

test('passes combine into median rates and p99s and the highest RSS and peak, keeping each pass', () => {
  const none = { keepalive: 0, newConn: 0 };
  const a = { keepaliveRps: 14000, keepaliveP99Ms: 2.4, newConnRps: 2100, newConnP99Ms: 20, rssMb: 66.6, rssMiB: 63.5, peakRssMb: 71.2, wrkErrors: none };
  const b = { keepaliveRps: 16000, keepaliveP99Ms: 2.0, newConnRps: 2300, newConnP99Ms: 18, rssMb: 68.3, rssMiB: 65.1, peakRssMb: 69.0, wrkErrors: { keepalive: 1, newConn: 2 } };
  const c = { keepaliveRps: 15500, keepaliveP99Ms: 3.1, newConnRps: 1900, newConnP99Ms: 25, rssMb: 65.0, rssMiB: 62.0, peakRssMb: 70.4, wrkErrors: { keepalive: 0, newConn: 4 } };
  const direct = { keepaliveRps: 30000, keepaliveP99Ms: 1, newConnRps: 9000, newConnP99Ms: 5, rssMb: null, rssMiB: null, peakRssMb: null, wrkErrors: none };
  const combined = combinePasses([{ rampart: a, direct }, { rampart: b }, { rampart: c }]);
  assert.deepEqual(combined['rampart'], { keepaliveRps: 15500, keepaliveP99Ms: 2.4, newConnRps: 2100, newConnP99Ms: 20, rssMb: 68.3, rssMiB: 65.1, peakRssMb: 71.2, wrkErrors: { keepalive: 1, newConn: 6 }, passes: [a, b, c] });
  // A kind measured in one pass only keeps that pass's figures.
  assert.deepEqual(combined['direct'], { ...direct, passes: [direct] });
});

test('median averages the middle two of an even count and ignores input order', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([14000, 16000]), 15000);
  assert.ok(Number.isNaN(median([])));
});

test('machine busy shares combine into their median over the passes that measured them', () => {
  const none = { keepalive: 0, newConn: 0 };
  const base = { keepaliveRps: 1, keepaliveP99Ms: 1, newConnRps: 1, newConnP99Ms: 1, rssMb: 60, rssMiB: 57.2, peakRssMb: 61, wrkErrors: none };
  const combined = combinePasses([
    { rampart: { ...base, machineBusyPct: { keepalive: 74.2, newConn: 95 } }, haproxy: base },
    { rampart: { ...base, machineBusyPct: { keepalive: 76.4, newConn: null } }, haproxy: base },
  ]);
  assert.deepEqual(combined['rampart']?.machineBusyPct, { keepalive: 75.3, newConn: 95 });
  // A kind whose phases were never watched carries no such field.
  assert.equal('machineBusyPct' in combined['haproxy']!, false);
});

test('scheduler figures combine into their median per phase over the passes that read them', () => {
  const none = { keepalive: 0, newConn: 0 };
  const base = { keepaliveRps: 1, keepaliveP99Ms: 1, newConnRps: 1, newConnP99Ms: 1, rssMb: 60, rssMiB: 57.2, peakRssMb: 61, wrkErrors: none };
  const combined = combinePasses([
    { rampart: { ...base, proxySched: { keepalive: { cpuUsPerRequest: 38.9, runQueueWaitPct: 21 }, newConn: null } }, haproxy: base },
    { rampart: { ...base, proxySched: { keepalive: { cpuUsPerRequest: 46.4, runQueueWaitPct: 20 }, newConn: { cpuUsPerRequest: 400, runQueueWaitPct: 9 } } }, haproxy: base },
  ]);
  assert.deepEqual(combined['rampart']?.proxySched, { keepalive: { cpuUsPerRequest: 42.7, runQueueWaitPct: 20.5 }, newConn: { cpuUsPerRequest: 400, runQueueWaitPct: 9 } });
  assert.equal('proxySched' in combined['haproxy']!, false);
});
