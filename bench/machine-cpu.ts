/**
 * How busy the whole machine was during a benchmark phase, from /proc/stat. A proxy hop that
 * serves fewer requests than another while the cores still have idle time is waiting on
 * latency (its hops' round trips), not on CPU; per-process CPU alone cannot tell the two apart.
 */
import { readFileSync } from 'node:fs';
import { phaseSched, type PhaseSched, type SchedTimes } from './proxy-sched.js';

export interface CpuTimes {
  /** Jiffies spent idle or waiting for I/O, summed over all cores. */
  readonly idle: number;
  /** All jiffies: user, nice, system, idle, iowait, irq, softirq, steal. */
  readonly total: number;
}

/** The aggregate `cpu` line of a /proc/stat text. */
export function parseCpuTimes(procStat: string): CpuTimes {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('/proc/stat has no aggregate cpu line');
  // guest and guest_nice (fields 9-10) are already counted in user and nice.
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((n) => !Number.isFinite(n))) throw new Error(`unreadable /proc/stat cpu line: ${line}`);
  return { idle: f[3]! + f[4]!, total: f.reduce((a, b) => a + b, 0) };
}

/** Percentage of all cores' time that was not idle between two readings; null if no time passed. */
export function busyPercent(from: CpuTimes, to: CpuTimes): number | null {
  const total = to.total - from.total;
  if (total <= 0) return null;
  return Math.round((1000 * (total - (to.idle - from.idle))) / total) / 10;
}

export function readCpuTimes(): CpuTimes {
  return parseCpuTimes(readFileSync('/proc/stat', 'utf8'));
}

/** Machine busy percentage while one kind's keep-alive and new-connection wrk runs lasted. */
export interface PhaseBusy {
  keepalive: number | null;
  newConn: number | null;
}

const PHASE_LINE = /^\[run\.sh\] (\S+): (keep-alive|new-connection) run \(/;

/** The proxies' scheduler accounting during one kind's two runs; null where it was not read. */
export interface PhaseSchedPair {
  keepalive: PhaseSched | null;
  newConn: PhaseSched | null;
}

/**
 * Follows the harness's log lines (`[run.sh] KIND: keep-alive run (10s)`, printed just before it
 * starts wrk) and reads /proc/stat from each such line until a quarter second before wrk's
 * fixed duration ends, so the window holds the run and nothing after it. Given `readSched`, it
 * reads the proxies' scheduler times over the same window.
 */
export class PhaseCpuWatcher {
  private readonly results = new Map<string, PhaseBusy>();
  private readonly sched = new Map<string, PhaseSchedPair>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly runMs: number,
    private readonly read: () => CpuTimes = readCpuTimes,
    private readonly readSched?: () => ReadonlyMap<number, SchedTimes>,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** Feed every line the harness writes to stderr. */
  onLine(line: string): void {
    const m = PHASE_LINE.exec(line);
    if (m === null) return;
    const kind = m[1]!;
    const phase = m[2] === 'keep-alive' ? 'keepalive' : 'newConn';
    const from = this.read();
    const schedFrom = this.readSched?.();
    const startedMs = this.nowMs();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const entry = this.results.get(kind) ?? { keepalive: null, newConn: null };
      entry[phase] = busyPercent(from, this.read());
      this.results.set(kind, entry);
      if (schedFrom !== undefined && this.readSched !== undefined) {
        const pair = this.sched.get(kind) ?? { keepalive: null, newConn: null };
        pair[phase] = phaseSched(schedFrom, this.readSched(), (this.nowMs() - startedMs) / 1000);
        this.sched.set(kind, pair);
      }
    }, Math.max(0, this.runMs - 250));
    this.timers.add(timer);
  }

  /** What was measured so far, by harness kind; windows still open are dropped. */
  finish(): Map<string, PhaseBusy> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    return this.results;
  }

  /** The proxies' scheduler accounting by harness kind (after `finish`). */
  schedByKind(): Map<string, PhaseSchedPair> {
    return this.sched;
  }
}
