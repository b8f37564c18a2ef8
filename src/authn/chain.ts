/**
 * The authenticator chain (DESIGN section 5): tries each configured authenticator in order and
 * the first that vouches for the caller wins. Callers only ever learn "authentication failed"
 * (401) or "try again later" (503); the reasons go to the log.
 */
import type { Logger } from 'pino';
import { AuthenticationError, UnavailableError } from '../core/errors.js';
import type { AuthenticatedCaller, AuthenticationRequest, Authenticator } from '../core/ports.js';

/** Options for {@link AuthenticatorChain}. */
export interface AuthenticatorChainOptions {
  readonly logger?: Logger;
}

/** Removes every occurrence of the presented token from a log string, in case a backend echoed it. */
function scrub(text: string, token: string | undefined): string {
  return token !== undefined && token.length > 0 ? text.split(token).join('[token]') : text;
}

/** Runs authenticators in order; see {@link AuthenticatorChain.authenticate}. */
export class AuthenticatorChain {
  private readonly authenticators: readonly Authenticator[];
  private readonly logger: Logger | undefined;

  constructor(authenticators: readonly Authenticator[], options: AuthenticatorChainOptions = {}) {
    this.authenticators = [...authenticators];
    this.logger = options.logger;
  }

  /** Names of the configured authenticators, in order (for startup logs and /readyz). */
  get names(): readonly string[] {
    return this.authenticators.map((a) => a.name);
  }

  /**
   * Returns the first successful authentication. Authenticators returning null are skipped.
   * When none succeeds, throws the first UnavailableError seen (so callers answer 503 and
   * retry) or else a generic AuthenticationError.
   */
  async authenticate(request: AuthenticationRequest): Promise<AuthenticatedCaller> {
    const token = request.bearerToken;
    const failures: Array<{ authenticator: string; code: string; detail: string }> = [];
    let unavailable: UnavailableError | undefined;
    for (const authenticator of this.authenticators) {
      let identity;
      try {
        identity = await authenticator.authenticate(request);
      } catch (err) {
        if (err instanceof UnavailableError) {
          unavailable ??= err;
          failures.push({ authenticator: authenticator.name, code: err.code, detail: scrub(err.message, token) });
        } else if (err instanceof AuthenticationError) {
          failures.push({ authenticator: authenticator.name, code: err.code, detail: scrub(err.detail, token) });
        } else {
          // A bug in one authenticator must not take the others down, nor leak through as a 500.
          const detail = scrub(err instanceof Error ? `${err.name}: ${err.message}` : String(err), token);
          failures.push({ authenticator: authenticator.name, code: 'unexpected', detail });
          this.logger?.warn({ authenticator: authenticator.name, detail }, 'authenticator failed unexpectedly');
        }
        this.logger?.debug(failures[failures.length - 1], 'authenticator rejected the caller');
        continue;
      }
      if (identity !== null) return { identity, authenticator: authenticator.name };
    }
    if (unavailable !== undefined) {
      this.logger?.warn({ failures }, 'authentication unavailable: a backing source could not be reached');
      throw unavailable;
    }
    const detail =
      failures.length === 0
        ? `no credentials for any of ${this.names.join(', ') || '(no authenticators)'}`
        : failures.map((f) => `${f.authenticator}: ${f.detail}`).join('; ');
    // The API logs the refusal once, with the request id and what was presented (error-handler.ts).
    this.logger?.debug({ failures }, 'every authenticator refused the caller');
    throw new AuthenticationError(detail);
  }
}
