/**
 * How a bench section process hands its figures to bench/run.mjs: one stdout line
 * `BENCH_RESULT <json>`; everything human-readable goes to stderr.
 */
export const RESULT_PREFIX = 'BENCH_RESULT ';

export function emitResult(value: unknown): void {
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(value)}\n`);
}

/** Progress for humans, on stderr. */
export function note(message: string): void {
  process.stderr.write(`  ${message}\n`);
}

/** Reads `--name value` from argv, or the default. */
export function argNumber(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0 || i + 1 >= process.argv.length) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number`);
  return v;
}

export function argString(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 || i + 1 >= process.argv.length ? fallback : process.argv[i + 1]!;
}
