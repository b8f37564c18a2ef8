/**
 * Builds a Go program from a source directory into a temp dir when `go` is on PATH: the Go
 * x509 anchor and the fleet's compiled agent client. Standard library only, so the build needs
 * no network (GOPROXY=off).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface GoBinary {
  readonly path: string;
  dispose(): void;
}

/** The built binary, or why there is none (Go not installed). Throws when the build fails. */
export function buildGoProgram(sourceDir: string, name: string): GoBinary | string {
  if (spawnSync('go', ['version'], { stdio: 'ignore' }).status !== 0) return 'go not on PATH';
  const dir = mkdtempSync(join(tmpdir(), `rampart-${name}-`));
  try {
    // Build a copy so go writes nothing next to the sources (the anchor's directory is read-only).
    cpSync(sourceDir, join(dir, 'src'), { recursive: true });
    const path = join(dir, name);
    execFileSync('go', ['build', '-o', path, '.'], { cwd: join(dir, 'src'), stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, GOFLAGS: '-mod=mod', GOCACHE: join(dir, 'cache'), GOPROXY: 'off' } });
    return { path, dispose: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
