/**
 * A listener that cannot bind is a configuration problem the operator must see by flag and
 * address, with exit status 2: node's bare `listen EADDRINUSE` names neither the flag nor what
 * to do.
 */
import { formatHostPort, type HostPort } from '../config/values.js';
import { ConfigError, isRampartError } from '../core/errors.js';

const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use; stop the process listening there or choose another port',
  EADDRNOTAVAIL: 'the address is not one of this host\'s',
  EACCES: 'permission denied; ports below 1024 need privileges',
  EPERM: 'permission denied',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve',
};

/** Maps a bind failure to RAMPART_ERR_LISTEN_FAILED; any other error passes through unchanged. */
export function listenFailure(err: unknown, flag: string, at: HostPort): unknown {
  if (isRampartError(err)) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string') return err;
  return new ConfigError('RAMPART_ERR_LISTEN_FAILED', `${flag} ${formatHostPort(at)}: cannot listen: ${REASONS[code] ?? code}`);
}

/** Runs `listen`, turning a bind failure into RAMPART_ERR_LISTEN_FAILED. */
export async function listenNamed<T>(flag: string, at: HostPort, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw listenFailure(err, flag, at);
  }
}
