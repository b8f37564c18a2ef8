/**
 * The Go crypto/x509 anchor (/work/shared/anchors/go-x509-issue): built into a temp dir when
 * `go` is on PATH, run with 1 and 2 workers; null figures when Go is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GO_ANCHOR_DIR = process.env['RAMPART_GO_ANCHOR'] ?? '/work/shared/anchors/go-x509-issue';

export interface GoAnchorResult {
  readonly perCore: number | null;
  readonly twoWorkers: number | null;
  readonly note: string;
}

function certsPerSecond(output: string): number {
  const m = /issue workers=\d+:\s*(\d+(?:\.\d+)?)\s*certs\/s/.exec(output);
  const value = Number(m?.[1]);
  if (!Number.isFinite(value)) throw new Error(`no certs/s in Go output: ${output.slice(0, 300)}`);
  return value;
}

export function runGoAnchor(n: number): GoAnchorResult {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) return { perCore: null, twoWorkers: null, note: 'go not on PATH' };
  const dir = mkdtempSync(join(tmpdir(), 'rampart-go-anchor-'));
  try {
    // The anchor directory is read-only; build a copy so go can write nothing next to it.
    cpSync(GO_ANCHOR_DIR, join(dir, 'src'), { recursive: true });
    const bin = join(dir, 'goissue');
    execFileSync('go', ['build', '-o', bin, '.'], { cwd: join(dir, 'src'), stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: join(dir, 'cache'), GOPROXY: 'off' } });
    const run = (workers: number): number => certsPerSecond(execFileSync(bin, ['-n', String(n), '-workers', String(workers)], { encoding: 'utf8', timeout: 300_000 }));
    const perCore = run(1);
    const twoWorkers = run(2);
    return { perCore, twoWorkers, note: `go anchor -n ${n}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
