import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { loadCaConfig } from '../../src/config/ca-config.js';
import { cpusFromCgroupV1, cpusFromCgroupV2, usableCpus } from '../../src/config/cpu-budget.js';

test('cgroup CPU quotas: v2 cpu.max and v1 cfs files', () => {
  assert.equal(cpusFromCgroupV2('max 100000\n'), null);
  assert.equal(cpusFromCgroupV2('200000 100000\n'), 2);
  assert.equal(cpusFromCgroupV2('150000 100000'), 1.5);
  assert.equal(cpusFromCgroupV2('garbage'), null);
  assert.equal(cpusFromCgroupV1('-1\n', '100000\n'), null);
  assert.equal(cpusFromCgroupV1('50000\n', '100000\n'), 0.5);
});

test('usable CPUs: the cores, capped by a quota rounded up, never below one', () => {
  const files = (entries: Record<string, string>) => (path: string) => entries[path] ?? null;
  assert.equal(usableCpus(64, files({ '/sys/fs/cgroup/cpu.max': '200000 100000' })), 2);
  assert.equal(usableCpus(64, files({ '/sys/fs/cgroup/cpu.max': '150000 100000' })), 2);
  assert.equal(usableCpus(4, files({ '/sys/fs/cgroup/cpu.max': 'max 100000' })), 4);
  assert.equal(usableCpus(2, files({ '/sys/fs/cgroup/cpu.max': '800000 100000' })), 2, 'a quota above the cores does not add cores');
  assert.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '300000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), 3);
  assert.equal(usableCpus(8, files({ '/sys/fs/cgroup/cpu.max': '10000 100000' })), 1);
  assert.equal(usableCpus(6, files({})), 6);
});

test('--workers takes a count or auto; anything else is a coded config error', () => {
  const base = { listen: '127.0.0.1:0', 'monitoring-listen': '127.0.0.1:0' };
  assert.equal(loadCaConfig(base, {}).workers, 1);
  assert.equal(loadCaConfig({ ...base, workers: '3' }, {}).workers, 3);
  const auto = loadCaConfig({ ...base, workers: 'auto' }, {}).workers;
  assert.ok(auto >= 1 && auto <= availableParallelism(), `auto gave ${auto}`);
  assert.equal(auto, usableCpus());
  for (const bad of ['0', 'two', '-1', '1.5']) {
    assert.throws(() => loadCaConfig({ ...base, workers: bad }, {}), { code: 'RAMPART_ERR_CONFIG_INVALID', message: /--workers must be a positive whole number or "auto"|--workers must be a positive whole number/ });
  }
});

test('counts have ceilings: --workers at most 256, --max-in-flight only while exact', () => {
  const base = { listen: '127.0.0.1:0', 'monitoring-listen': '127.0.0.1:0' };
  assert.equal(loadCaConfig({ ...base, workers: '256' }, {}).workers, 256);
  assert.throws(() => loadCaConfig({ ...base, workers: '257' }, {}), { code: 'RAMPART_ERR_CONFIG_INVALID', message: /--workers must be at most 256, got "257"/ });
  assert.throws(() => loadCaConfig({ ...base, workers: '9007199254740994' }, {}), { code: 'RAMPART_ERR_CONFIG_INVALID', message: /--workers must be at most 256/ });
  assert.equal(loadCaConfig({ ...base, 'max-in-flight': '9007199254740991' }, {}).maxInFlight, Number.MAX_SAFE_INTEGER);
  assert.throws(() => loadCaConfig({ ...base, 'max-in-flight': '9007199254740993' }, {}), { code: 'RAMPART_ERR_CONFIG_INVALID', message: /--max-in-flight must be at most 9007199254740991/ });
});
