/**
 * mTLS proxy hop: runs the shared harness (/work/shared/anchors/mtls-proxy) from a temp copy
 * with Rampart's plugins (bench/proxies/*.sh) added, and parses its two tables.
 *
 * The targets compare rampart with haproxy, and the harness measures kinds one after another,
 * so a drift in machine speed during a pass favours whichever kind ran in the faster minute.
 * After the first pass over every kind, each further pass measures only the compared kinds, in
 * reverse order of the pass before; their rates and p99s are the median over passes and their
 * RSS the highest. Every pass's own figures stay in `passes`. Beside each kind's figures, the
 * whole machine's busy percentage during its two wrk runs (`machineBusyPct`), and the proxies'
 * CPU per request and run-queue wait from the scheduler's own accounting (`proxySched`).
 * Usage: node --import tsx bench/section-proxy.ts [--duration 10s] [--kinds direct,stunnel,...]
 *        [--passes 2] [--compared haproxy,rampart]
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { REPO_ROOT } from './ca-process.js';
import { parseDuration } from '../src/core/clock.js';
import { PhaseCpuWatcher, readCpuTimes } from './machine-cpu.js';
import { readProxySched, type PhaseSched } from './proxy-sched.js';
import { combinePasses, parseHarnessTables, proxyKey, type ProxyFigures, type ProxySchedPhase } from './proxy-table.js';
import { argNumber, argString, emitResult, note } from './result-line.js';

const HARNESS = process.env['RAMPART_PROXY_HARNESS'] ?? '/work/shared/anchors/mtls-proxy';
const duration = argString('duration', '10s');
const kinds = argString('kinds', 'direct,stunnel,haproxy,rampart,rampart-plain-tls').split(',');
const passes = Math.max(1, Math.round(argNumber('passes', 2)));
const compared = argString('compared', 'haproxy,rampart')
  .split(',')
  .filter((k) => kinds.includes(k));

const runMs = parseDuration(duration);
if (runMs === null) throw new Error(`--duration ${duration} is not a duration wrk takes (10s, 2m)`);

/** CPU per request from the window's CPU seconds and wrk's rate over its whole run. */
function perRequest(s: PhaseSched | null, rps: number): ProxySchedPhase | null {
  if (s === null || rps <= 0) return null;
  return { cpuUsPerRequest: Math.round((10 * s.cpuSeconds * 1e6) / (rps * s.windowSeconds)) / 10, runQueueWaitPct: s.runQueueWaitPct };
}

const dir = mkdtempSync(join(tmpdir(), 'rampart-bench-proxy-'));
try {
  cpSync(HARNESS, dir, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'proxies'), 0o755);
  for (const f of readdirSync(join(REPO_ROOT, 'bench/proxies'))) cpSync(join(REPO_ROOT, 'bench/proxies', f), join(dir, 'proxies', f));
  const env = { ...process.env, DURATION: duration, RAMPART_ROOT: REPO_ROOT, RAMPART_LOG_LEVEL: 'warn', PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` };

  const runPass = async (passKinds: readonly string[]): Promise<Record<string, ProxyFigures>> => {
    note(`proxy: ${join(dir, 'run.sh')} ${passKinds.join(' ')} (DURATION=${duration})`);
    const child = spawn('bash', [join(dir, 'run.sh'), ...passKinds], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      process.stderr.write(c);
    });
    const harnessPid = child.pid;
    const watcher = new PhaseCpuWatcher(runMs, readCpuTimes, harnessPid === undefined ? undefined : () => readProxySched(harnessPid));
    createInterface({ input: child.stderr }).on('line', (line) => {
      process.stderr.write(`${line}\n`);
      watcher.onLine(line);
    });
    const code = await new Promise<number | null>((res) => child.once('exit', res));
    const busy = watcher.finish();
    if (code !== 0) throw new Error(`run.sh exited ${code}`);
    const figures = parseHarnessTables(out, passKinds);
    for (const [kind, phases] of busy) {
      const f = figures[proxyKey(kind)];
      if (f !== undefined) f.machineBusyPct = phases;
    }
    for (const [kind, pair] of watcher.schedByKind()) {
      const f = figures[proxyKey(kind)];
      if (f !== undefined) f.proxySched = { keepalive: perRequest(pair.keepalive, f.keepaliveRps), newConn: perRequest(pair.newConn, f.newConnRps) };
    }
    return figures;
  };

  const results: Record<string, ProxyFigures>[] = [await runPass(kinds)];
  for (let pass = 2; pass <= passes && compared.length > 0; pass++) {
    // The first pass ran the compared kinds in `kinds` order; alternate from there.
    results.push(await runPass(pass % 2 === 0 ? [...compared].reverse() : compared));
  }
  emitResult({ ...combinePasses(results), duration });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
