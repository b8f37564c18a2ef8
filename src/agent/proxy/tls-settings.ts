import { constants } from 'node:crypto';
import tls from 'node:tls';
import type { Credentials } from '../credentials.js';

/** TLS knobs shared by inbound and outbound; defaults are TLS 1.2 minimum, 1.3 preferred. */
export interface TlsTuning {
  readonly minVersion?: tls.SecureVersion;
  readonly maxVersion?: tls.SecureVersion;
  /** OpenSSL cipher list; may include TLS 1.3 suite names. Node's defaults when absent. */
  readonly ciphers?: string;
}

/** TLS protocol bounds after applying defaults. */
export function tlsVersions(tuning: TlsTuning | undefined): { minVersion: tls.SecureVersion; maxVersion: tls.SecureVersion } {
  return { minVersion: tuning?.minVersion ?? 'TLSv1.2', maxVersion: tuning?.maxVersion ?? 'TLSv1.3' };
}

/**
 * Secure-context options for one credential generation. The bundle is the only trust anchor:
 * peers are authenticated by chain + SPIFFE ID, never against the system CA store.
 * TLS 1.2 renegotiation is refused: a peer is authorized once, on the certificate of the first
 * handshake, and must not swap it afterwards (Envoy does not renegotiate either).
 */
export function secureContextOptions(c: Credentials, tuning: TlsTuning | undefined): tls.SecureContextOptions {
  const opts: tls.SecureContextOptions = {
    key: c.keyPem,
    cert: c.certChainPem,
    ca: c.bundlePem,
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    ...tlsVersions(tuning),
  };
  if (tuning?.ciphers !== undefined) opts.ciphers = tuning.ciphers;
  return opts;
}

/**
 * Secure-context options for the inbound listener: as {@link secureContextOptions}, and no TLS
 * session resumption. A resumed session skips certificate verification: the client's
 * certificate is taken from the session, not checked again for expiry nor against the bundle
 * of the day, so a ticket taken before a certificate expired would open connections after it.
 * SSL_OP_NO_TICKET stops TLS 1.2 tickets and makes OpenSSL's TLS 1.3 tickets stateful, i.e.
 * looked up in the server's session cache, which Node leaves empty (it keeps no internal cache
 * and we do not handle 'resumeSession'), so nothing is ever resumed. Costs nothing between
 * agents: the outbound side never offers a session for resumption.
 */
export function inboundContextOptions(c: Credentials, tuning: TlsTuning | undefined): tls.SecureContextOptions {
  const opts = secureContextOptions(c, tuning);
  return { ...opts, secureOptions: (opts.secureOptions ?? 0) | constants.SSL_OP_NO_TICKET };
}

/** Builds a reusable secure context so outbound connections do not re-parse PEM each time. */
export function buildSecureContext(c: Credentials, tuning: TlsTuning | undefined): tls.SecureContext {
  return tls.createSecureContext(secureContextOptions(c, tuning));
}
