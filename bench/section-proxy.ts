/**
 * mTLS proxy hop: runs the shared harness (/work/shared/anchors/mtls-proxy) from a temp copy
 * with Rampart's plugins (bench/proxies/*.sh) added, and parses its two tables.
 * Usage: node --import tsx bench/section-proxy.ts [--duration 10s] [--kinds direct,stunnel,...]
 */
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './ca-process.js';
import { parseHarnessTables } from './proxy-table.js';
import { argString, emitResult, note } from './result-line.js';

const HARNESS = process.env['RAMPART_PROXY_HARNESS'] ?? '/work/shared/anchors/mtls-proxy';
const duration = argString('duration', '10s');
const kinds = argString('kinds', 'direct,stunnel,haproxy,rampart,rampart-plain-tls').split(',');

const dir = mkdtempSync(join(tmpdir(), 'rampart-bench-proxy-'));
try {
  cpSync(HARNESS, dir, { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'proxies'), 0o755);
  for (const f of readdirSync(join(REPO_ROOT, 'bench/proxies'))) cpSync(join(REPO_ROOT, 'bench/proxies', f), join(dir, 'proxies', f));
  note(`proxy: ${join(dir, 'run.sh')} ${kinds.join(' ')} (DURATION=${duration})`);
  const env = { ...process.env, DURATION: duration, RAMPART_ROOT: REPO_ROOT, RAMPART_LOG_LEVEL: 'warn', PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` };
  const child = spawn('bash', [join(dir, 'run.sh'), ...kinds], { cwd: dir, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    process.stderr.write(c);
  });
  const code = await new Promise<number | null>((res) => child.once('exit', res));
  if (code !== 0) throw new Error(`run.sh exited ${code}`);
  emitResult({ ...parseHarnessTables(out, kinds), duration });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
