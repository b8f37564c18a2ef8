/** Parses the two tables printed by the mtls-proxy harness's run.sh into bench JSON fields. */
import type { PhaseBusy } from './machine-cpu.js';
import { median, round } from './stats.js';

export interface ProxyFigures {
  keepaliveRps: number;
  keepaliveP99Ms: number;
  newConnRps: number;
  newConnP99Ms: number;
  /**
   * Max VmRSS of the inbound and outbound processes in MB (10^6 bytes: the unit; /proc's
   * "kB" are KiB, so 60,000 kB is 61.4 MB); null for `direct`.
   */
  rssMb: number | null;
  /** The same in MiB, as `ps` and /proc count. */
  rssMiB: number | null;
  /**
   * Max VmHWM of the two processes in MB: the most either held at any moment of the run, beside
   * the reading after it (the target); null for `direct`.
   */
  peakRssMb: number | null;
  /** Socket errors and non-2xx answers wrk reported in the keep-alive and new-connection runs (wrk's rate counts non-2xx too). */
  wrkErrors: { keepalive: number; newConn: number };
  /** Both cores' busy percentage during the keep-alive and new-connection runs (section-proxy.ts). */
  machineBusyPct?: PhaseBusy;
  /** The proxies' scheduler accounting over the same windows (section-proxy.ts, proxy-sched.ts). */
  proxySched?: ProxySchedFigures;
}

/** Per phase: CPU of both proxy processes per request, all threads, and their mean run-queue wait. */
export interface ProxySchedPhase {
  cpuUsPerRequest: number;
  runQueueWaitPct: number;
}

export interface ProxySchedFigures {
  keepalive: ProxySchedPhase | null;
  newConn: ProxySchedPhase | null;
}

/** camelCase JSON key of a harness kind: rampart-plain-tls -> rampartPlainTls. */
export const proxyKey = (kind: string): string => kind.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export function parseHarnessTables(out: string, kinds: readonly string[]): Record<string, ProxyFigures> {
  const figures: Record<string, ProxyFigures> = {};
  const rows = out.split('\n').map((line) => line.split('|').map((c) => c.trim()));
  // proxy | keepalive req/s | p50 | p99 | new-conn req/s | p50 | p99
  for (const c of rows) {
    if (c.length === 7 && kinds.includes(c[0]!) && /^\d+$/.test(c[1]!)) {
      figures[proxyKey(c[0]!)] = { keepaliveRps: Number(c[1]), keepaliveP99Ms: Number(c[3]), newConnRps: Number(c[4]), newConnP99Ms: Number(c[6]), rssMb: null, rssMiB: null, peakRssMb: null, wrkErrors: { keepalive: 0, newConn: 0 } };
    }
  }
  // proxy | side | pid | VmRSS kB | VmHWM kB | threads | CPU ms/1k keepalive | CPU ms/1k new-conn
  for (const c of rows) {
    if (c.length === 8 && (c[1] === 'inbound' || c[1] === 'outbound') && /^\d+$/.test(c[3]!)) {
      const f = figures[proxyKey(c[0]!)];
      if (f === undefined) continue;
      const kib = Number(c[3]);
      f.rssMb = Math.max(f.rssMb ?? 0, round((kib * 1024) / 1e6, 1));
      f.rssMiB = Math.max(f.rssMiB ?? 0, round(kib / 1024, 1));
      if (/^\d+$/.test(c[4]!)) f.peakRssMb = Math.max(f.peakRssMb ?? 0, round((Number(c[4]) * 1024) / 1e6, 1));
    }
  }
  // "  <kind>: wrk errors keep-alive N, new-conn M", under "wrk reported socket errors or non-2xx responses:"
  for (const line of out.split('\n')) {
    const m = /^\s+(\S+): wrk errors keep-alive (\d+), new-conn (\d+)\s*$/.exec(line);
    const f = m ? figures[proxyKey(m[1]!)] : undefined;
    if (m && f !== undefined) f.wrkErrors = { keepalive: Number(m[2]), newConn: Number(m[3]) };
  }
  return figures;
}

/** A kind's figures combined over passes, with each pass's own figures kept. */
export interface CombinedProxyFigures extends ProxyFigures {
  passes: ProxyFigures[];
}

/**
 * Per kind: the median rate and p99 over the passes that measured it, and the highest RSS (the
 * memory target is a ceiling, so the worst pass counts).
 */
export function combinePasses(passes: readonly Record<string, ProxyFigures>[]): Record<string, CombinedProxyFigures> {
  const combined: Record<string, CombinedProxyFigures> = {};
  const keys = [...new Set(passes.flatMap((p) => Object.keys(p)))];
  for (const key of keys) {
    const runs = passes.map((p) => p[key]).filter((f): f is ProxyFigures => f !== undefined);
    const mid = (field: 'keepaliveRps' | 'keepaliveP99Ms' | 'newConnRps' | 'newConnP99Ms'): number => median(runs.map((r) => r[field]));
    const highest = (field: 'rssMb' | 'rssMiB' | 'peakRssMb'): number | null => {
      const values = runs.map((r) => r[field]).filter((v): v is number => v !== null);
      return values.length === 0 ? null : Math.max(...values);
    };
    const busy = runs.map((r) => r.machineBusyPct).filter((b): b is PhaseBusy => b !== undefined);
    const busyMedian = (phase: keyof PhaseBusy): number | null => medianOrNull(busy.map((b) => b[phase]));
    combined[key] = {
      keepaliveRps: Math.round(mid('keepaliveRps')),
      keepaliveP99Ms: round(mid('keepaliveP99Ms'), 3),
      newConnRps: Math.round(mid('newConnRps')),
      newConnP99Ms: round(mid('newConnP99Ms'), 3),
      rssMb: highest('rssMb'),
      rssMiB: highest('rssMiB'),
      peakRssMb: highest('peakRssMb'),
      wrkErrors: runs.reduce((a, r) => ({ keepalive: a.keepalive + (r.wrkErrors?.keepalive ?? 0), newConn: a.newConn + (r.wrkErrors?.newConn ?? 0) }), { keepalive: 0, newConn: 0 }),
      ...(busy.length === 0 ? {} : { machineBusyPct: { keepalive: busyMedian('keepalive'), newConn: busyMedian('newConn') } }),
      ...schedMedians(runs),
      passes: runs,
    };
  }
  return combined;
}

/** Median of the figures passes measured, to one decimal; null when none did. */
function medianOrNull(values: ReadonlyArray<number | null>): number | null {
  const measured = values.filter((v): v is number => v !== null);
  return measured.length === 0 ? null : round(median(measured), 1);
}

/** Median over passes of each phase's scheduler figures; absent when no pass read them. */
function schedMedians(runs: readonly ProxyFigures[]): { proxySched?: ProxySchedFigures } {
  const sched = runs.map((r) => r.proxySched).filter((s): s is ProxySchedFigures => s !== undefined);
  if (sched.length === 0) return {};
  const phase = (which: keyof ProxySchedFigures): ProxySchedPhase | null => {
    const values = sched.map((s) => s[which]).filter((v): v is ProxySchedPhase => v !== null);
    if (values.length === 0) return null;
    return { cpuUsPerRequest: medianOrNull(values.map((v) => v.cpuUsPerRequest))!, runQueueWaitPct: medianOrNull(values.map((v) => v.runQueueWaitPct))! };
  };
  return { proxySched: { keepalive: phase('keepalive'), newConn: phase('newConn') } };
}
