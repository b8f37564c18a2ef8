/**
 * A few process metrics for the agent, read at scrape time: CPU, resident memory, V8 heap and
 * start time. prom-client's collectDefaultMetrics would add GC and event-loop observers that
 * run all the time, and several MB of code, to every pod.
 */
import type { Registry } from 'prom-client';
import { Counter, Gauge } from './prom-lean.js';

export function registerProcessMetrics(registry: Registry, prefix: string): void {
  let reportedCpuMicros = 0;
  const cpu = new Counter({
    name: `${prefix}cpu_seconds_total`,
    help: 'User and system CPU time spent by the process, in seconds.',
    registers: [registry],
    collect() {
      const usage = process.cpuUsage();
      const total = usage.user + usage.system;
      if (total > reportedCpuMicros) cpu.inc((total - reportedCpuMicros) / 1e6);
      reportedCpuMicros = Math.max(reportedCpuMicros, total);
    },
  });
  const rss = new Gauge({
    name: `${prefix}resident_memory_bytes`,
    help: 'Resident memory of the process, in bytes.',
    registers: [registry],
    collect() {
      rss.set(process.memoryUsage.rss());
    },
  });
  const heap = new Gauge({
    name: `${prefix}heap_used_bytes`,
    help: 'V8 heap in use, in bytes.',
    registers: [registry],
    collect() {
      heap.set(process.memoryUsage().heapUsed);
    },
  });
  new Gauge({ name: `${prefix}start_time_seconds`, help: 'Start time of the process since the Unix epoch, in seconds.', registers: [registry] }).set(Math.round(Date.now() / 1000 - process.uptime()));
}
