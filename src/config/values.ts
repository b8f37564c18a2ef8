/** Parsers for flag values shared by every command's config. */
import { isIP } from 'node:net';
import { parseDuration } from '../core/clock.js';
import { ConfigError } from '../core/errors.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function hostPort(text: string, flag: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" must be HOST:PORT, e.g. 127.0.0.1:8443`);
  const host = (match[1] ?? match[2]) as string;
  if (match[1] !== undefined && isIP(host) !== 6) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" has an invalid IPv6 address`);
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return isIP(hp.host) === 6 ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * The longest duration any flag takes: 100 years. parseDuration reads any run of digits, so
 * "999999999999999999999d" was 8.6e28 ms and 400 nines were Infinity; such a --root-ttl made
 * rampart ca die in start-up on a root certificate with no valid dates, and such a --max-ttl
 * failed the first state write with a STATE_CORRUPT that advised removing the state.
 */
export const MAX_DURATION_MS = 36_500 * 86_400_000;

/** Parses a duration flag (`90s`, `5m`, `1h`), which must be above zero, or returns undefined when absent. */
export function durationFlag(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === null) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" is not a duration; use forms like 90s, 5m, 1h, 30d`);
  // "0s" is a duration, just not a usable one here: saying it is none would send the reader hunting for a typo.
  if (ms <= 0) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" must be more than zero, e.g. 90s, 5m, 1h`);
  if (!(ms <= MAX_DURATION_MS)) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text.length > 40 ? `${text.slice(0, 40)}…` : text}" is longer than 36500d (100 years), the most any setting takes`);
  return ms;
}

/** The longest delay node's setTimeout honours: a longer one fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A duration flag that becomes a timer: {@link durationFlag}, and at most 24.8 days, or the timer
 * would fire at once (an agent given `--startup-timeout 30d` gave up before asking the CA).
 */
export function timerDurationFlag(text: string | undefined, flag: string): number | undefined {
  const ms = durationFlag(text, flag);
  if (ms !== undefined && ms > MAX_TIMER_MS) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" is longer than 24.8 days (2^31-1 ms), the longest a timer can wait`);
  return ms;
}

/** The CA API every client command talks to when --ca-url is not given. */
export const DEFAULT_CA_URL = 'https://localhost:8443';

/**
 * Parses a CA API URL flag (--ca-url of agent, bundle and root) into its origin. Only
 * https://HOST[:PORT] is taken: the API is TLS only, and its paths are fixed, so a path, query
 * or userinfo would be silently dropped.
 */
export function caUrlFlag(text: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" is not a URL; use e.g. https://rampart-ca.rampart-system.svc:443`);
  }
  if (url.protocol !== 'https:') throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" must use https:// (the CA API is TLS only)`);
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${flag} "${text}" must be just https://HOST[:PORT]`);
  }
  return url.origin;
}
