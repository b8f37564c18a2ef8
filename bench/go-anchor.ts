/**
 * The Go crypto/x509 anchor (/work/shared/anchors/go-x509-issue): built into a temp dir when
 * `go` is on PATH, run with 1 and 2 workers; null figures when Go is not installed.
 */
import { execFileSync } from 'node:child_process';
import { buildGoProgram } from './go-build.js';

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
  const binary = buildGoProgram(GO_ANCHOR_DIR, 'goissue');
  if (typeof binary === 'string') return binary;
  return {
    run: (workers, n) => certsPerSecond(execFileSync(binary.path, ['-n', String(n), '-workers', String(workers)], { encoding: 'utf8', timeout: 300_000 })),
    dispose: () => binary.dispose(),
  };
}
