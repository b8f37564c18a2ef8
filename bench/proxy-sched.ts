/**
 * The scheduler's own accounting of the proxy processes during a harness phase, from
 * /proc/PID/task/TID/schedstat: nanoseconds on a CPU, and nanoseconds runnable but waiting on a
 * run queue, summed over every thread. The harness's per-process CPU comes from /proc/PID/stat,
 * counted in clock ticks, which misses part of the short bursts a relay runs in. The wait tells
 * why a proxy is slow while cores sit idle: it had work, but its wake-ups queued behind a busy core.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface SchedTimes {
  readonly runNs: number;
  readonly waitNs: number;
}

/** What the proxies of one kind spent during one phase window. */
export interface PhaseSched {
  /** CPU seconds of all proxy processes together. */
  readonly cpuSeconds: number;
  /** Mean over the proxy processes of the window's share each spent runnable but not running. */
  readonly runQueueWaitPct: number;
  readonly processes: number;
  readonly windowSeconds: number;
}

/** A schedstat line: "run_ns wait_ns timeslices". */
export function parseSchedstat(text: string): SchedTimes {
  const f = text.trim().split(/\s+/).map(Number);
  if (f.length < 2 || !Number.isFinite(f[0]) || !Number.isFinite(f[1])) throw new Error(`unreadable schedstat: ${text.trim()}`);
  return { runNs: f[0]!, waitNs: f[1]! };
}

/** Commands of the proxies the harness runs (rampart's agents are node). */
const PROXY_COMMANDS: ReadonlySet<string> = new Set(['node', 'haproxy', 'stunnel', 'stunnel4']);

export interface ProcReader {
  readonly pids: () => number[];
  readonly read: (path: string) => string;
  readonly list: (path: string) => string[];
}

const realProc: ProcReader = {
  pids: () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number),
  read: (path) => readFileSync(path, 'utf8'),
  list: (path) => readdirSync(path),
};

/** The parent pid from /proc/PID/stat (after the command, which may hold spaces or parentheses). */
function parentPid(stat: string): number {
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/**
 * Scheduler times of every proxy process below `root` (the harness's shell), by pid. Processes
 * that exit while they are read are left out.
 */
export function readProxySched(root: number, proc: ProcReader = realProc): Map<number, SchedTimes> {
  const parents = new Map<number, number>();
  for (const pid of proc.pids()) {
    try {
      parents.set(pid, parentPid(proc.read(`/proc/${pid}/stat`)));
    } catch {
      // Gone already.
    }
  }
  const below = (pid: number): boolean => {
    for (let p = parents.get(pid), hops = 0; p !== undefined && hops < 64; p = parents.get(p), hops++) if (p === root) return true;
    return false;
  };
  const out = new Map<number, SchedTimes>();
  for (const pid of parents.keys()) {
    if (!below(pid)) continue;
    try {
      if (!PROXY_COMMANDS.has(proc.read(`/proc/${pid}/comm`).trim())) continue;
      let runNs = 0;
      let waitNs = 0;
      for (const tid of proc.list(`/proc/${pid}/task`)) {
        const t = parseSchedstat(proc.read(`/proc/${pid}/task/${tid}/schedstat`));
        runNs += t.runNs;
        waitNs += t.waitNs;
      }
      out.set(pid, { runNs, waitNs });
    } catch {
      // Gone while read.
    }
  }
  return out;
}

/** The change between two readings over a window; null when no proxy was seen in both. */
export function phaseSched(before: ReadonlyMap<number, SchedTimes>, after: ReadonlyMap<number, SchedTimes>, windowSeconds: number): PhaseSched | null {
  let runNs = 0;
  let waitShare = 0;
  let processes = 0;
  for (const [pid, a] of before) {
    const b = after.get(pid);
    if (b === undefined) continue;
    runNs += b.runNs - a.runNs;
    waitShare += (b.waitNs - a.waitNs) / 1e9 / windowSeconds;
    processes++;
  }
  if (processes === 0 || windowSeconds <= 0) return null;
  return { cpuSeconds: runNs / 1e9, runQueueWaitPct: Math.round((1000 * waitShare) / processes) / 10, processes, windowSeconds };
}
