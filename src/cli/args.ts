/** Flag parsing shared by every subcommand: strict, with clear one-line errors and exit code 2. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A usage error: printed as one line plus a hint, exit code 2. */
export class UsageError extends Error {}

export type FlagSpec = NonNullable<ParseArgsConfig['options']>;

export interface Parsed<T> {
  readonly values: T;
  readonly positionals: string[];
}

/** Parses argv against a spec; unknown flags and missing values become UsageErrors. */
export function parseFlags<T>(argv: readonly string[], spec: FlagSpec, allowPositionals = false): Parsed<T> {
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: { ...spec, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
    return { values: values as T, positionals };
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message);
  }
}

/** Requires a string flag. */
export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing required flag --${flag}`);
  return value;
}
