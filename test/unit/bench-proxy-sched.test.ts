import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { PhaseCpuWatcher, type CpuTimes } from '../../bench/machine-cpu.js';
import { parseSchedstat, phaseSched, readProxySched, type ProcReader, type SchedTimes } from '../../bench/proxy-sched.js';

test('a schedstat line gives run and wait nanoseconds', () => {
  assert.deepEqual(parseSchedstat('5290000000 2060000000 81292\n'), { runNs: 5_290_000_000, waitNs: 2_060_000_000 });
  assert.throws(() => parseSchedstat('12\n'), /unreadable schedstat/);
  assert.throws(() => parseSchedstat('a b c'), /unreadable schedstat/);
});

// A /proc with a harness shell (100), its two proxies (node 101 with two threads, haproxy 102),
// wrk (103), nginx under its master (104 -> 105), and an unrelated node (200).
const FAKE: Record<string, string> = {
  '/proc/100/stat': '100 (bash) S 1 100 100',
  '/proc/101/stat': '101 (node) S 100 100 100',
  '/proc/102/stat': '102 (hap (x)) S 100 100 100',
  '/proc/103/stat': '103 (wrk) R 100 100 100',
  '/proc/104/stat': '104 (nginx) S 100 100 100',
  '/proc/105/stat': '105 (nginx) S 104 100 100',
  '/proc/200/stat': '200 (node) S 1 200 200',
  '/proc/101/comm': 'node\n',
  '/proc/102/comm': 'haproxy\n',
  '/proc/103/comm': 'wrk\n',
  '/proc/104/comm': 'nginx\n',
  '/proc/105/comm': 'nginx\n',
  '/proc/200/comm': 'node\n',
  '/proc/101/task/101/schedstat': '1000 400 7',
  '/proc/101/task/110/schedstat': '500 100 3',
  '/proc/102/task/102/schedstat': '3000 900 9',
  '/proc/200/task/200/schedstat': '99999 99999 9',
};
const fakeProc: ProcReader = {
  pids: () => [1, 100, 101, 102, 103, 104, 105, 200],
  read: (path) => {
    const text = FAKE[path];
    if (text === undefined) throw new Error(`ENOENT ${path}`);
    return text;
  },
  list: (path) => Object.keys(FAKE).filter((k) => k.startsWith(`${path}/`) && k.endsWith('/schedstat')).map((k) => k.split('/')[4]!),
};

test('only proxy processes below the harness count, every thread summed', () => {
  assert.deepEqual(Object.fromEntries(readProxySched(100, fakeProc)), {
    101: { runNs: 1500, waitNs: 500 },
    102: { runNs: 3000, waitNs: 900 },
  });
});

test('a window gives the proxies CPU seconds and their mean share of it spent queued', () => {
  const before = new Map<number, SchedTimes>([
    [1, { runNs: 0, waitNs: 0 }],
    [2, { runNs: 0, waitNs: 0 }],
    [3, { runNs: 0, waitNs: 0 }], // exited before the second reading: left out
  ]);
  const after = new Map<number, SchedTimes>([
    [1, { runNs: 2e9, waitNs: 2e9 }],
    [2, { runNs: 3e9, waitNs: 1e9 }],
  ]);
  assert.deepEqual(phaseSched(before, after, 10), { cpuSeconds: 5, runQueueWaitPct: 15, processes: 2, windowSeconds: 10 });
  assert.equal(phaseSched(before, new Map(), 10), null);
  assert.equal(phaseSched(before, after, 0), null);
});

test('the watcher reads the proxies over the same window as the machine', async () => {
  const cpu: CpuTimes[] = [
    { idle: 0, total: 0 },
    { idle: 25, total: 100 },
  ];
  let c = 0;
  const sched = [new Map([[7, { runNs: 0, waitNs: 0 }]]), new Map([[7, { runNs: 4e8, waitNs: 2e8 }]])];
  let s = 0;
  let clock = 0;
  const watcher = new PhaseCpuWatcher(300, () => cpu[c++]!, () => sched[s++]!, () => clock);
  watcher.onLine('[run.sh] rampart: keep-alive run (10s)');
  clock = 1000;
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(Object.fromEntries(watcher.finish()), { rampart: { keepalive: 75, newConn: null } });
  assert.deepEqual(Object.fromEntries(watcher.schedByKind()), {
    rampart: { keepalive: { cpuSeconds: 0.4, runQueueWaitPct: 20, processes: 1, windowSeconds: 1 }, newConn: null },
  });
});

test('against the real /proc: a node child of a shell is found with its CPU', async () => {
  const shell = spawn('sh', ['-c', `"${process.execPath}" -e "const t = Date.now(); while (Date.now() - t < 300) {} setTimeout(() => {}, 5000)"; true`], { stdio: 'ignore' });
  let found = new Map<number, SchedTimes>();
  try {
    await new Promise((r) => setTimeout(r, 600));
    found = readProxySched(shell.pid!);
    assert.equal(found.size, 1, 'exactly the node grandchild');
    const [times] = [...found.values()];
    assert.ok(times!.runNs >= 200e6, `the busy loop's CPU is counted (${times!.runNs} ns)`);
  } finally {
    for (const pid of found.keys()) process.kill(pid, 'SIGKILL');
    shell.kill('SIGKILL');
  }
});
