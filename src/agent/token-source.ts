/**
 * The workload's service-account token, read from its file on every request: kubelet rotates
 * projected tokens in place, so a cached copy would expire under the agent.
 */
import { ConfigError } from '../core/errors.js';
import { FileTooLarge, NotRegularFile, readRegularFile } from '../files/read-regular-file.js';

/** A service-account token is a few KiB; far more is not a token file. */
const MAX_TOKEN_BYTES = 64 * 1024;

/**
 * True for text that can be sent as a bearer token: a JWT is base64url segments; anything else
 * (empty, binary, several lines, a PEM key) is a wrong file, and node would refuse it as a header.
 */
export function isBearerTokenText(token: string): boolean {
  return token !== '' && /^[A-Za-z0-9._~+/=-]+$/.test(token);
}

/** Supplies the bearer token for one CA request. */
export interface TokenSource {
  /** Reads the current token; throws `RAMPART_ERR_TOKEN_FILE` when it cannot. */
  read(): Promise<string>;
  /** Where the token comes from, for log lines (never the token itself). */
  readonly description: string;
}

/** A token source backed by a file path, re-read on every call. */
export function fileTokenSource(path: string): TokenSource {
  return {
    description: path,
    async read() {
      let text: string;
      try {
        text = await readRegularFile(path, MAX_TOKEN_BYTES);
      } catch (err) {
        // A FIFO would hold the renewal (and a libuv thread) forever, /dev/zero would fill memory.
        if (err instanceof NotRegularFile || err instanceof FileTooLarge) throw new ConfigError('RAMPART_ERR_TOKEN_FILE', `token file ${path} ${err.message}; check --token-file`);
        const code = (err as NodeJS.ErrnoException).code ?? 'read error';
        throw new ConfigError('RAMPART_ERR_TOKEN_FILE', `cannot read token file ${path} (${code}); check --token-file and that the projected token is mounted`, { cause: err });
      }
      const token = text.trim();
      if (!isBearerTokenText(token)) {
        throw new ConfigError('RAMPART_ERR_TOKEN_FILE', `token file ${path} does not hold a token; check --token-file`);
      }
      return token;
    },
  };
}
