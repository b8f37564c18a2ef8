/** Keeps docs/errors.md in sync with ERROR_CATALOGUE and the HTTP mapping of the error handler. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CATALOGUE, RampartError, type ErrorCode } from '../../src/core/errors.js';
import { STATUS_OF } from '../../src/server/error-handler.js';

const DOC = fileURLToPath(new URL('../../docs/errors.md', import.meta.url));

interface Row {
  code: string;
  status: number;
  summary: string;
  todo: string;
  line: number;
}

/** Rows of the first table whose header is `| Code | HTTP | Summary | What to do |`. */
function parseTable(text: string): Row[] {
  const lines = text.split('\n');
  const header = lines.findIndex((l) => /^\|\s*Code\s*\|\s*HTTP\s*\|\s*Summary\s*\|\s*What to do\s*\|\s*$/.test(l));
  assert.ok(header >= 0, 'docs/errors.md has a "| Code | HTTP | Summary | What to do |" table');
  assert.match(lines[header + 1] ?? '', /^\|(\s*:?-+:?\s*\|){4}\s*$/, 'the header is followed by a separator row');
  const rows: Row[] = [];
  for (let i = header + 2; i < lines.length && (lines[i] ?? '').startsWith('|'); i++) {
    // Split on pipes that are not escaped (\|) and not inside backticks.
    const cells: string[] = [];
    let cell = '';
    let inCode = false;
    const line = lines[i] as string;
    for (let j = 1; j < line.length; j++) {
      const ch = line[j] as string;
      if (ch === '`') inCode = !inCode;
      if (ch === '|' && !inCode && line[j - 1] !== '\\') {
        cells.push(cell.trim());
        cell = '';
      } else {
        cell += ch;
      }
    }
    assert.equal(cells.length, 4, `line ${i + 1} has 4 cells: ${line}`);
    const [code, status, summary, todo] = cells as [string, string, string, string];
    const m = /^`(RAMPART_ERR_[A-Z0-9_]+)`$/.exec(code);
    assert.ok(m, `line ${i + 1}: first cell is a backticked code, got ${code}`);
    assert.match(status, /^\d{3}$/, `line ${i + 1}: HTTP status`);
    rows.push({ code: m[1] as string, status: Number(status), summary, todo, line: i + 1 });
  }
  return rows;
}

const rows = parseTable(readFileSync(DOC, 'utf8'));
const codes = Object.keys(ERROR_CATALOGUE) as ErrorCode[];

test('every catalogue code is documented exactly once, and nothing else is', () => {
  const documented = rows.map((r) => r.code);
  const missing = codes.filter((c) => !documented.includes(c));
  const extra = documented.filter((c) => !(c in ERROR_CATALOGUE));
  const dupes = documented.filter((c, i) => documented.indexOf(c) !== i);
  assert.deepEqual(missing, [], 'codes missing from docs/errors.md');
  assert.deepEqual(extra, [], 'codes in docs/errors.md that the catalogue does not have');
  assert.deepEqual(dupes, [], 'codes documented twice');
  assert.equal(rows.length, codes.length);
});

test('each documented HTTP status is the one the error handler sends for the code\'s category', () => {
  for (const row of rows) {
    const entry = ERROR_CATALOGUE[row.code as ErrorCode];
    if (!entry) continue;
    assert.equal(row.status, STATUS_OF[entry.category], `${row.code} (line ${row.line}) is ${entry.category} -> ${STATUS_OF[entry.category]}`);
    // A RampartError of that code gets the same category, so the mapping above is what callers see.
    assert.equal(new RampartError(row.code as ErrorCode, 'x').category, entry.category);
  }
});

test('summaries match the catalogue and every row says what to do', () => {
  for (const row of rows) {
    const entry = ERROR_CATALOGUE[row.code as ErrorCode];
    if (!entry) continue;
    assert.equal(row.summary, entry.summary, `${row.code} summary (line ${row.line})`);
    assert.ok(row.todo.length >= 15, `${row.code} has a "what to do" (line ${row.line})`);
  }
});

test('the status mapping covers every category with a sensible HTTP status', () => {
  const categories = new Set(Object.values(ERROR_CATALOGUE).map((e) => e.category));
  for (const c of categories) assert.ok(STATUS_OF[c] >= 400 && STATUS_OF[c] <= 599, c);
  assert.equal(STATUS_OF['bad-request'], 400);
  assert.equal(STATUS_OF.unauthenticated, 401);
  assert.equal(STATUS_OF.forbidden, 403);
  assert.equal(STATUS_OF['payload-too-large'], 413);
  assert.equal(STATUS_OF['unsupported-media-type'], 415);
  assert.equal(STATUS_OF['rate-limited'], 429);
  assert.equal(STATUS_OF.unavailable, 503);
});

test('every RAMPART_ERR_ code written anywhere in src/ is in the catalogue', () => {
  const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));
  const files = readdirSync(srcDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const used = new Set<string>();
  for (const f of files) for (const m of readFileSync(`${srcDir}${f}`, 'utf8').matchAll(/RAMPART_ERR_[A-Z_]+/g)) used.add(m[0]);
  const missing = [...used].filter((c) => !(c in ERROR_CATALOGUE));
  assert.deepEqual(missing, [], 'codes used in src/ but not catalogued');
});
