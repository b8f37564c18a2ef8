/** What the HTTP layer needs from the rest of the CA. */
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import type { AuthenticatedCaller, AuthenticationRequest, Authenticator } from '../core/ports.js';
import type { CaMetrics } from '../observability/ca-metrics.js';
import type { CaAuthority } from '../runtime/ca-authority.js';

/** The authenticator chain as the routes use it: first success wins, else it throws. */
export interface CallerAuthenticator {
  authenticate(request: AuthenticationRequest): Promise<AuthenticatedCaller>;
}

export interface CaServerDeps {
  readonly runtime: CaAuthority;
  readonly authenticator: CallerAuthenticator;
  /** Used on bundle polls to attribute reported sequences to a verified agent. */
  readonly svidAuthenticator: Authenticator;
  readonly adminIdentities: readonly string[];
  readonly metrics: CaMetrics;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Certificate requests in flight above which the CA answers 429. */
  readonly maxInFlight: number;
  readonly bundleRefreshHintSeconds: number;
  /**
   * For a connection whose handshake did not ask for a TLS client certificate, when its address
   * will be asked again; null when it was asked (client-chain-guard.ts). Absent where every
   * connection is asked.
   */
  readonly certificateNotAskedUntil?: (socket: Socket) => number | null;
}
