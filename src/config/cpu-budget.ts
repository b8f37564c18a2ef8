/**
 * How many CPUs this process may really use: the cores Node sees, capped by a cgroup CPU quota
 * (a container's `resources.limits.cpu`). Node's availableParallelism() reports the node's cores,
 * so a pod limited to 2 CPUs on a 64-core node would otherwise fork 64 signing workers.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** CPUs allowed by a cgroup v2 `cpu.max` text ("max 100000" or "200000 100000"), or null. */
export function cpusFromCgroupV2(cpuMax: string): number | null {
  const [quota, period] = cpuMax.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return null;
  const q = Number(quota);
  const p = Number(period ?? 100_000);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

/** CPUs allowed by cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` texts, or null. */
export function cpusFromCgroupV1(quotaUs: string, periodUs: string): number | null {
  const q = Number(quotaUs.trim());
  const p = Number(periodUs.trim());
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** Whole CPUs this process may use (at least 1), from the cores and any cgroup quota. */
export function usableCpus(cores: number = availableParallelism(), read: (path: string) => string | null = readOrNull): number {
  const v2 = read('/sys/fs/cgroup/cpu.max');
  let quota = v2 === null ? null : cpusFromCgroupV2(v2);
  if (v2 === null) {
    const q = read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us');
    const p = read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us');
    quota = q === null || p === null ? null : cpusFromCgroupV1(q, p);
  }
  // A fractional quota (1.5 CPUs) still runs two processes at full speed part of the time.
  const allowed = quota === null ? cores : Math.min(cores, Math.ceil(quota));
  return Math.max(1, allowed);
}
