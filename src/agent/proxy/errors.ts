import { ConfigError } from '../../core/errors.js';

/** Ports and hosts accepted for listen/backend/upstream addresses. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Validates a host/port pair from options; `allowZero` for listeners (port 0 = any free port). */
export function checkHostPort(what: string, hp: HostPort | undefined, allowZero: boolean): HostPort {
  if (hp === undefined || typeof hp.host !== 'string' || hp.host.length === 0) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${what}: a host is required`);
  }
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(hp.port) || hp.port < min || hp.port > 65535) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${what}: port must be a whole number from ${min} to 65535, got ${String(hp.port)}`);
  }
  return hp;
}

/** Validates an optional positive timeout in milliseconds, falling back to a default. */
export function checkTimeout(what: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${what} must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}

/** A short, key-free description of an error for log lines. */
export function describeError(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
