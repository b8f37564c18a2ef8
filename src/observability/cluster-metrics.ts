/**
 * One metrics exposition for the multi-core CA: the primary's metrics plus every signing
 * worker's, summed. Counters and histograms must never go down in it: Prometheus reads any drop
 * as a process restart and counts the whole remaining total again as new increments, so one
 * worker exiting would show as a burst of millions of issuances. A worker that exits therefore
 * leaves its last reported counts behind, and each exposed counter value is at least the last
 * one exposed (increments a worker made after its last report are lost, not double-counted;
 * the primary takes a report from every serving worker each second, not only at scrapes, so a
 * worker killed outright loses at most its last second).
 */
import { AggregatorRegistry, Counter, Histogram, type Registry } from 'prom-client';

export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
type MetricJson = MetricsJson[number];

// prom-client's typings declare `type` as a numeric enum; at run time it is the type's name.
const isMonotonic = (m: MetricJson): boolean => {
  const type = m.type as unknown as string;
  return type === 'counter' || type === 'histogram';
};

/**
 * A registry's counters and histograms, without collecting anything else: what the primary
 * keeps of a worker between scrapes. The gauges' collectors read /proc (open descriptors, one
 * directory entry per connection) and would run on the signing event loop at every refresh.
 */
export async function monotonicMetricsJson(registry: Registry): Promise<MetricsJson> {
  const monotonic = registry.getMetricsAsArray().filter((m) => m instanceof Counter || m instanceof Histogram);
  return (await Promise.all(monotonic.map((m) => m.get()))) as MetricsJson;
}

function seriesKey(name: string, metricName: string | undefined, labels: Partial<Record<string, string | number>>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${String(labels[k])}`)
    .join(',');
  return `${metricName ?? name}{${sorted}}`;
}

/**
 * prom-client drops process_start_time_seconds when aggregating ('omit'), so the CA had none.
 * The earliest start, the primary's, is the CA's: it is when its counters began.
 */
function startTimeAsEarliest(metrics: MetricsJson): MetricsJson {
  return metrics.map((m) => (m.name.endsWith('process_start_time_seconds') ? ({ ...m, aggregator: 'min' } as MetricJson) : m));
}

export class ClusterMetrics {
  private readonly lastReport = new Map<number, MetricsJson>();
  private retired: Promise<MetricsJson> = Promise.resolve([]);
  private readonly highWater = new Map<string, number>();

  /** Keeps a worker's latest report, to be folded into the totals when the worker exits. */
  observe(workerId: number, metrics: MetricsJson): void {
    // A copy: a registry's own JSON shares its value objects with the live metrics.
    this.lastReport.set(workerId, structuredClone(metrics));
  }

  /** Folds an exited worker's last counters and histograms into the retired totals. */
  retire(workerId: number): void {
    const last = this.lastReport.get(workerId);
    this.lastReport.delete(workerId);
    if (last === undefined) return;
    const kept = last.filter(isMonotonic);
    // One folded total, however many workers have come and gone.
    this.retired = this.retired.then((sum) => AggregatorRegistry.aggregate([sum, kept]).getMetricsAsJSON());
  }

  /** The Prometheus text for the primary's metrics and the live workers' latest reports. */
  async exposition(primary: MetricsJson, workers: readonly MetricsJson[]): Promise<string> {
    const merged = await AggregatorRegistry.aggregate([primary, await this.retired, ...workers].map(startTimeAsEarliest)).getMetricsAsJSON();
    for (const metric of merged) {
      if (!isMonotonic(metric)) continue;
      for (const value of metric.values) {
        const key = seriesKey(metric.name, (value as { metricName?: string }).metricName, value.labels);
        const previous = this.highWater.get(key) ?? 0;
        if (value.value < previous) value.value = previous;
        else this.highWater.set(key, value.value);
      }
    }
    return AggregatorRegistry.aggregate([merged]).metrics();
  }
}
