/**
 * Finds keys repeated within one JSON object. JSON.parse keeps only the last of them, so a log
 * line with `"component":"a","component":"b"` parses fine and hides the first; log shippers differ
 * in which one they keep.
 */

/** The keys that occur more than once in any single object of `text` (which must be valid JSON). */
export function duplicateKeys(text: string): string[] {
  JSON.parse(text); // valid JSON, so the scan below may be naive about everything but strings
  const found: string[] = [];
  const stack: Array<Set<string> | null> = []; // a key set per open object, null per open array
  let i = 0;
  let expectKey = false;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const keys = stack[stack.length - 1];
      if (expectKey && keys) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (keys.has(key)) found.push(key);
        keys.add(key);
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = stack[stack.length - 1] != null;
    i += 1;
  }
  return found;
}
