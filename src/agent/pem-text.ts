/** PEM text as the agent writes and concatenates it. */

/** `pem` ending in a newline, so concatenated blocks stay on their own lines. */
export function ensureNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
