/**
 * The Go crypto/x509 anchor (/work/shared/anchors/go-x509-issue): built into a temp dir when
 * `go` is on PATH, run with 1 and 2 workers; null figures when Go is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const GO_ANCHOR_DIR = process.env['RAMPART_GO_ANCHOR'] ?? '/work/shared/anchors/go-x509-issue';

/** A built anchor binary; `run` measures certs/s with that many workers. */
export interface GoAnchor {
  run(workers: number, n: number): number;
  dispose(): void;
}

function certsPerSecond(output: string): number {
  const m = /issue workers=\d+:\s*(\d+(?:\.\d+)?)\s*certs\/s/.exec(output);
  const value = Number(m?.[1]);
  if (!Number.isFinite(value)) throw new Error(`no certs/s in Go output: ${output.slice(0, 300)}`);
  return value;
}

/** Builds the anchor, or returns why it cannot (Go not installed). */
export function buildGoAnchor(): GoAnchor | string {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) return 'go not on PATH';
  const dir = mkdtempSync(join(tmpdir(), 'rampart-go-anchor-'));
  try {
    // The anchor directory is read-only; build a copy so go can write nothing next to it.
    cpSync(GO_ANCHOR_DIR, join(dir, 'src'), { recursive: true });
    const bin = join(dir, 'goissue');
    execFileSync('go', ['build', '-o', bin, '.'], { cwd: join(dir, 'src'), stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: join(dir, 'cache'), GOPROXY: 'off' } });
    return {
      run: (workers, n) => certsPerSecond(execFileSync(bin, ['-n', String(n), '-workers', String(workers)], { encoding: 'utf8', timeout: 300_000 })),
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
