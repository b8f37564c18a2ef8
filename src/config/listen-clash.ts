/**
 * Two listeners of one command line on one address can never both start; found at bind time it
 * reads as "in use; stop the process listening there", sending the operator after a process
 * that does not exist. Found here, the error names the two flags instead.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../core/errors.js';
import { formatHostPort, type HostPort } from './values.js';

/** One listener as the operator wrote it. */
export interface NamedListener {
  /** The flag, e.g. `--inbound`. */
  readonly flag: string;
  /** The flag's value as given. */
  readonly text: string;
  readonly listen: HostPort;
}

const IPV4_ANY = '0.0.0.0';
const IPV6_ANY = '::';

function canonicalHost(host: string): string {
  // One spelling per IPv6 address (`0:0::1` is `::1`); names compare case-insensitively.
  return isIP(host) === 6 ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host.toLowerCase();
}

/**
 * True when binding both is certain to fail: the same port on the same host, or on a wildcard
 * address and an address of its family. Port 0 picks a free port, so it never clashes; a
 * wildcard of the other family may or may not (dual-stack sockets), which the bind will tell.
 */
function clash(a: HostPort, b: HostPort): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  const [x, y] = [canonicalHost(a.host), canonicalHost(b.host)];
  if (x === y) return true;
  const coveredBy = (wildcard: string, other: string): boolean =>
    (wildcard === IPV4_ANY && isIP(other) === 4) || (wildcard === IPV6_ANY && isIP(other) === 6);
  return coveredBy(x, y) || coveredBy(y, x);
}

/** Refuses two listeners that would need the same address, naming both flags. */
export function refuseListenClashes(listeners: readonly NamedListener[]): void {
  for (let i = 0; i < listeners.length; i++) {
    for (let j = i + 1; j < listeners.length; j++) {
      const [a, b] = [listeners[i] as NamedListener, listeners[j] as NamedListener];
      if (!clash(a.listen, b.listen)) continue;
      const [at, other] = [formatHostPort(a.listen), formatHostPort(b.listen)];
      const same = canonicalHost(a.listen.host) === canonicalHost(b.listen.host);
      const where = same ? `both listen on ${at}` : `would listen on overlapping addresses (${at} and ${other})`;
      throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${a.flag} "${a.text}" and ${b.flag} "${b.text}" ${where}; give each listener its own address`);
    }
  }
}
