/** If-None-Match evaluation for GET (RFC 9110 section 13.1.2). */

// Each entity tag in the field: an optional weak prefix and a quoted opaque tag (which holds no
// DQUOTE). Anything between tags is skipped: a malformed element then matches nothing, and the
// client gets the full answer, which is always safe.
const ENTITY_TAG = /(?:W\/)?"([^"]*)"/g;

/**
 * True when `field` (the request's If-None-Match) matches `etag` (the current representation's,
 * e.g. `"4"`), so a GET answers 304. `*` matches any current representation; otherwise the field
 * is a list, and comparison is weak: `W/"4"` matches `"4"`, because caches and proxies may weaken
 * a tag they pass on.
 */
export function ifNoneMatchHits(field: string | undefined, etag: string): boolean {
  if (field === undefined) return false;
  if (field.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  for (const match of field.matchAll(ENTITY_TAG)) {
    if (`"${match[1] as string}"` === opaque) return true;
  }
  return false;
}
