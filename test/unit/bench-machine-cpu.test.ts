import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { busyPercent, parseCpuTimes, PhaseCpuWatcher, type CpuTimes } from '../../bench/machine-cpu.js';

const STAT = (user: number, idle: number, iowait: number, softirq: number): string =>
  `cpu  ${user} 0 500 ${idle} ${iowait} 0 ${softirq} 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345\n`;

test('the aggregate cpu line counts idle and iowait as idle, guest time not twice', () => {
  assert.deepEqual(parseCpuTimes(STAT(1000, 8000, 200, 300)), { idle: 8200, total: 10_000 });
  assert.throws(() => parseCpuTimes('cpu0 1 2 3\n'), /no aggregate cpu line/);
  assert.throws(() => parseCpuTimes('cpu  1 2 x 4 5 6 7 8\n'), /unreadable/);
});

test('busy percentage is the non-idle share of the time between two readings', () => {
  const from = parseCpuTimes(STAT(1000, 8000, 200, 300));
  // 1,000 jiffies pass: 600 user, 150 softirq, 200 idle, 50 iowait.
  const to = parseCpuTimes(STAT(1600, 8200, 250, 450));
  assert.equal(busyPercent(from, to), 75);
  assert.equal(busyPercent(from, from), null);
});

test('each kind gets the busy share of its own keep-alive and new-connection windows', async () => {
  // Readings from a script: each window sees a different load.
  const readings: CpuTimes[] = [
    { idle: 0, total: 0 },
    { idle: 25, total: 100 }, // rampart keep-alive: 75 % busy
    { idle: 25, total: 100 },
    { idle: 35, total: 200 }, // rampart new connections: 90 % busy
    { idle: 35, total: 200 },
  ];
  let i = 0;
  const watcher = new PhaseCpuWatcher(300, () => readings[i++]!);
  watcher.onLine('[run.sh] === rampart');
  watcher.onLine('[run.sh] rampart: keep-alive run (10s)');
  await new Promise((r) => setTimeout(r, 120));
  watcher.onLine('[run.sh] rampart: new-connection run (10s, Connection: close)');
  await new Promise((r) => setTimeout(r, 120));
  // A window still open when the harness ends is dropped, not half-measured.
  watcher.onLine('[run.sh] haproxy: keep-alive run (10s)');
  const results = watcher.finish();
  assert.deepEqual(Object.fromEntries(results), { rampart: { keepalive: 75, newConn: 90 } });
  assert.equal(i, 5);
});
