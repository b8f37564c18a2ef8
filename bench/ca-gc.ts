/**
 * The CA's garbage-collection pauses over a window of load, read from its own /metrics
 * (prom-client's rampart_ca_nodejs_gc_duration_seconds histogram, summed over the cluster's
 * workers by the primary). Pauses stall every request in flight on that process, so the bench
 * reports them beside the latency they add to.
 */

/** Cumulative GC figures of one /metrics reading. */
export interface GcReading {
  readonly seconds: number;
  readonly pauses: number;
  /** Pauses of at most 10 ms and at most 100 ms (the histogram's buckets). */
  readonly upTo10ms: number;
  readonly upTo100ms: number;
}

/** GC over a window: total pause time, how many, and how many were long. */
export interface GcWindow {
  readonly pauseSeconds: number;
  readonly pauses: number;
  readonly over10ms: number;
  readonly over100ms: number;
}

const METRIC = 'rampart_ca_nodejs_gc_duration_seconds';

/** Sums the histogram's series over every GC kind in a Prometheus text exposition. */
export function parseGcReading(text: string): GcReading {
  let seconds = 0;
  let pauses = 0;
  let upTo10ms = 0;
  let upTo100ms = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(METRIC)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (!Number.isFinite(value)) continue;
    const series = line.slice(METRIC.length, line.indexOf('{') < 0 ? line.indexOf(' ') : line.indexOf('{'));
    if (series === '_sum') seconds += value;
    else if (series === '_count') pauses += value;
    else if (series === '_bucket' && line.includes('le="0.01"')) upTo10ms += value;
    else if (series === '_bucket' && line.includes('le="0.1"')) upTo100ms += value;
  }
  return { seconds, pauses, upTo10ms, upTo100ms };
}

/** The window between two readings. */
export function gcWindow(before: GcReading, after: GcReading): GcWindow {
  const pauses = after.pauses - before.pauses;
  return {
    pauseSeconds: Math.round((after.seconds - before.seconds) * 1000) / 1000,
    pauses,
    over10ms: pauses - (after.upTo10ms - before.upTo10ms),
    over100ms: pauses - (after.upTo100ms - before.upTo100ms),
  };
}

/** Reads the CA's GC figures now; null when its monitoring listener does not answer. */
async function readGc(monitoringUrl: string): Promise<GcReading | null> {
  try {
    const res = await fetch(`${monitoringUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!res.ok) return null;
    return parseGcReading(await res.text());
  } catch {
    return null;
  }
}

/**
 * Reads the CA's GC figures now; the function returned reads them again and gives the window
 * between, or null when either reading failed (no monitoring URL, no answer).
 */
export async function openGcWindow(monitoringUrl: string | null): Promise<() => Promise<GcWindow | null>> {
  const before = monitoringUrl === null ? null : await readGc(monitoringUrl);
  return async () => {
    const after = before === null || monitoringUrl === null ? null : await readGc(monitoringUrl);
    return before === null || after === null ? null : gcWindow(before, after);
  };
}
