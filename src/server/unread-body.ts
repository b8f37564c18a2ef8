import type { IncomingMessage } from 'node:http';

/**
 * True when `req` announced a body that has not been read in full. Answered early (404, 405, 401,
 * 415) on a kept-alive connection, node reads and drops the rest of such a body to reach the next
 * request, with no limit but the request timeout: a client could stream gigabytes at a 404. The
 * servers close such a connection instead, which the lingering close bounds (lingering-close.ts).
 */
export function bodyLeftUnread(req: IncomingMessage): boolean {
  if (req.complete) return false;
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}
