import { ConfigError, isRampartError } from '../../core/errors.js';
import { spiffeIdMatches, validateAllowPattern } from '../../core/identity.js';

/** Decides whether a verified peer SPIFFE ID may use an inbound listener. */
export type PeerAuthorizer = (spiffeId: string) => boolean;

/**
 * Validates the allow list once at start-up and returns a matcher. An empty list is a
 * configuration error: an inbound that admits nobody is almost certainly a mistake.
 */
export function compileAllowList(allow: readonly string[]): PeerAuthorizer {
  if (allow.length === 0) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'inbound needs at least one allow entry (a SPIFFE ID or a prefix pattern ending in "/*")');
  }
  const patterns = allow.map((p) => {
    try {
      return validateAllowPattern(p);
    } catch (err) {
      const why = isRampartError(err) ? err.message : String(err);
      throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `invalid allow entry: ${why}`, { cause: err });
    }
  });
  const exact = new Set(patterns.filter((p) => !p.endsWith('/*')));
  const prefixes = patterns.filter((p) => p.endsWith('/*'));
  return (id) => exact.has(id) || prefixes.some((p) => spiffeIdMatches(p, id));
}
