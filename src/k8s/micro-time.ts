/**
 * metav1.MicroTime as the API server parses it: RFC 3339 with exactly six fractional digits.
 * client-node sends a Date as `toISOString()` (three digits), which a real API server refuses
 * with 400, so Lease times are sent as preformatted strings.
 */
export function formatMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
