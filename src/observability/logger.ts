/** The one place loggers are created: JSON lines, with secrets redacted wherever they might hide. */
import { pino, type DestinationStream, type Logger } from 'pino';

/** Paths pino censors: authorization headers, tokens and key material, at any depth we log. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'bearerToken',
  '*.bearerToken',
  'keyPem',
  '*.keyPem',
  '*.*.keyPem',
  'key',
  '*.key',
  'privateKey',
  '*.privateKey',
  'csr',
  '*.csr',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Creates the root logger of a command; components get children of it. */
export function createLogger(options: { level?: LogLevel; name: string; destination?: DestinationStream }): Logger {
  const opts = {
    name: options.name,
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}
