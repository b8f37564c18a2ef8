/** Flag parsing shared by every subcommand: strict, with clear one-line errors and exit code 2. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { nearestWord } from './nearest-word.js';

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
    const { values, positionals, tokens } = parseArgs({ args: [...argv], options: { ...spec, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals, tokens: true });
    refuseRepeats(tokens, spec);
    return { values: values as T, positionals };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    // node's three lines for a flag followed by another flag instead of its value, as one.
    const valueless = /^Option '(--[^']+)' argument is ambiguous/.exec(message)?.[1];
    if (valueless !== undefined) throw new UsageError(`${valueless} needs a value, but the next word is another flag; for a value that starts with "-", write ${valueless}=-VALUE`);
    const unknown = /^Unknown option '--([^'=]+)'/.exec(message)?.[1];
    const guess = unknown === undefined ? undefined : nearestWord(unknown, Object.keys(spec));
    throw new UsageError(guess === undefined ? message : `${message}; did you mean --${guess}?`);
  }
}

// parseArgs keeps the last of a repeated flag; `--listen A --listen B` is almost always a mistake
// (a copied line, a config merged twice), so it is refused unless the flag is a list.
function refuseRepeats(tokens: ReadonlyArray<{ kind: string; name?: string }>, spec: FlagSpec): void {
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name === undefined) continue;
    if (spec[token.name]?.multiple === true) continue;
    if (seen.has(token.name)) throw new UsageError(`--${token.name} is given more than once; give it once`);
    seen.add(token.name);
  }
}

/** Requires a string flag. */
export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing required flag --${flag}`);
  return value;
}
