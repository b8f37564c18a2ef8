/**
 * The one catalogue of Rampart error codes. Every error a caller can see carries one of these
 * stable codes; `server/error-handler.ts` is the only place that maps a category to HTTP, and
 * `docs/errors.md` documents each code (a unit test keeps the two in sync).
 */

/** Broad kinds of failure; each maps to exactly one HTTP status in the server. */
export type ErrorCategory =
  | 'bad-request'
  | 'unauthenticated'
  | 'forbidden'
  | 'not-found'
  | 'method-not-allowed'
  | 'expectation-failed'
  | 'conflict'
  | 'payload-too-large'
  | 'headers-too-large'
  | 'http-version-not-supported'
  | 'request-timeout'
  | 'unsupported-media-type'
  | 'rate-limited'
  | 'unavailable'
  | 'config'
  | 'internal';

interface CatalogueEntry {
  readonly category: ErrorCategory;
  /** One-line description used in docs/errors.md. */
  readonly summary: string;
}

/** Every code Rampart emits. Adding a code here without documenting it fails a unit test. */
export const ERROR_CATALOGUE = {
  RAMPART_ERR_BAD_REQUEST: { category: 'bad-request', summary: 'The request (HTTP framing, URL, query or JSON body) is not what the endpoint expects.' },
  RAMPART_ERR_CSR_NOT_PEM: { category: 'bad-request', summary: 'The CSR is not PEM text.' },
  RAMPART_ERR_CSR_WRONG_PEM_TYPE: { category: 'bad-request', summary: 'The PEM block is not a CERTIFICATE REQUEST.' },
  RAMPART_ERR_CSR_MALFORMED: { category: 'bad-request', summary: 'The CSR is not valid PKCS#10 DER.' },
  RAMPART_ERR_CSR_BAD_SIGNATURE: { category: 'bad-request', summary: 'The CSR signature does not verify with its own public key.' },
  RAMPART_ERR_CSR_UNSUPPORTED_SIGNATURE_ALGORITHM: { category: 'bad-request', summary: 'The CSR is signed with an algorithm the CA does not take, or one that does not fit its key.' },
  RAMPART_ERR_CSR_UNSUPPORTED_KEY: { category: 'bad-request', summary: 'The CSR key is not ECDSA P-256/P-384 or RSA 2048/3072/4096.' },
  RAMPART_ERR_CSR_IDENTITY_MISMATCH: { category: 'forbidden', summary: "The CSR's URI SAN names an identity other than the authenticated caller." },
  RAMPART_ERR_CSR_FORBIDDEN_SAN: { category: 'bad-request', summary: 'The CSR asks for a DNS, IP, email or other non-URI SAN.' },
  RAMPART_ERR_CSR_MULTIPLE_URI_SANS: { category: 'bad-request', summary: 'The CSR carries more than one URI SAN.' },
  RAMPART_ERR_CSR_CA_REQUESTED: { category: 'bad-request', summary: 'The CSR asks for CA powers (basicConstraints cA=true or keyCertSign).' },
  RAMPART_ERR_CSR_UNSUPPORTED_EXTENSION: { category: 'bad-request', summary: 'The CSR requests an extension Rampart does not accept.' },
  RAMPART_ERR_TTL_INVALID: { category: 'bad-request', summary: 'ttlSeconds is not a positive whole number.' },
  RAMPART_ERR_SPIFFE_ID_INVALID: { category: 'bad-request', summary: 'A SPIFFE ID does not follow the SPIFFE-ID specification.' },
  RAMPART_ERR_BODY_TOO_LARGE: { category: 'payload-too-large', summary: 'The request body is over 64 KiB.' },
  RAMPART_ERR_HEADERS_TOO_LARGE: { category: 'headers-too-large', summary: "The request's headers are over Node's 16 KiB limit." },
  RAMPART_ERR_HTTP_VERSION_NOT_SUPPORTED: { category: 'http-version-not-supported', summary: 'The request line names an HTTP version other than 1.0 or 1.1.' },
  RAMPART_ERR_REQUEST_TIMEOUT: { category: 'request-timeout', summary: 'The request did not arrive in full within the server\'s time limit.' },
  RAMPART_ERR_UNSUPPORTED_MEDIA_TYPE: { category: 'unsupported-media-type', summary: 'The request body is not application/json, or it has a Content-Encoding.' },
  RAMPART_ERR_UNAUTHENTICATED: { category: 'unauthenticated', summary: 'No authenticator accepted the caller (token or client certificate).' },
  RAMPART_ERR_NOT_ADMIN: { category: 'forbidden', summary: 'The caller is authenticated but not in admin.identities.' },
  RAMPART_ERR_NOT_FOUND: { category: 'not-found', summary: 'No such endpoint or object.' },
  RAMPART_ERR_METHOD_NOT_ALLOWED: { category: 'method-not-allowed', summary: 'The endpoint exists but does not take this HTTP method; the Allow header lists those it takes.' },
  RAMPART_ERR_EXPECTATION_FAILED: { category: 'expectation-failed', summary: 'The request carries an Expect header other than 100-continue, the only expectation the servers meet.' },
  RAMPART_ERR_ROTATION_NOT_ALLOWED: { category: 'conflict', summary: 'The root-rotation step is not allowed now; the message says why and when it will be.' },
  RAMPART_ERR_STATE_CONFLICT: { category: 'conflict', summary: 'Another writer changed the CA state first; retry.' },
  RAMPART_ERR_RATE_LIMITED: { category: 'rate-limited', summary: 'The CA is shedding load; retry after the Retry-After header.' },
  RAMPART_ERR_NOT_READY: { category: 'unavailable', summary: 'The CA has no usable signer yet or is shutting down.' },
  RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE: { category: 'unavailable', summary: 'The token could not be checked because the Kubernetes API server (or JWKS source) is unreachable.' },
  RAMPART_ERR_STATE_LOCKED: { category: 'config', summary: 'Another CA process holds the state directory lock.' },
  RAMPART_ERR_STATE_CORRUPT: { category: 'internal', summary: 'The persisted CA state cannot be read or fails validation.' },
  RAMPART_ERR_CONFIG_INVALID: { category: 'config', summary: 'A flag, environment variable or config file value is invalid.' },
  RAMPART_ERR_USAGE: { category: 'config', summary: 'The command line is not what the command expects: an unknown flag, a missing value, or a file argument that cannot be used.' },
  RAMPART_ERR_LISTEN_FAILED: { category: 'config', summary: 'A listener cannot bind its address: in use, not an address of this host, or not permitted.' },
  RAMPART_ERR_PLUGGED_CA_INVALID: { category: 'config', summary: 'The plugged-in CA files do not form a valid signing CA.' },
  RAMPART_ERR_TOKEN_FILE: { category: 'config', summary: 'The service-account token file cannot be read.' },
  RAMPART_ERR_CA_UNREACHABLE: { category: 'unavailable', summary: 'The agent or CLI cannot reach the CA.' },
  RAMPART_ERR_PEER_ID_MISMATCH: { category: 'forbidden', summary: "An agent's outbound upstream presented a valid certificate for another SPIFFE ID than the one expected." },
  RAMPART_ERR_SIGNING_CHECK_FAILED: { category: 'internal', summary: 'A freshly signed certificate failed its post-signing check and was withheld.' },
  RAMPART_ERR_INTERNAL: { category: 'internal', summary: 'An unexpected internal error; see the CA log.' },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Base class of every Rampart error; carries a stable code and a message safe to show callers. */
export class RampartError extends Error {
  readonly code: ErrorCode;
  readonly category: ErrorCategory;
  /** Seconds the caller should wait before retrying (429/503). */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.category = ERROR_CATALOGUE[code].category;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/** The CSR or request body is unacceptable. */
export class BadRequestError extends RampartError {}
/** The caller could not be authenticated. `detail` is for logs only, never the response. */
export class AuthenticationError extends RampartError {
  readonly detail: string;
  constructor(detail: string, code: ErrorCode = 'RAMPART_ERR_UNAUTHENTICATED') {
    super(code, 'authentication failed: present a valid service-account token or SVID client certificate');
    this.detail = detail;
  }
}
/** Authenticated, but not allowed to do this. */
export class ForbiddenError extends RampartError {}
/** A rotation step or state write is not possible now. */
export class ConflictError extends RampartError {}
/** The service cannot answer now; retry later. */
export class UnavailableError extends RampartError {}
/** Invalid configuration, flags or plugged-in files. */
export class ConfigError extends RampartError {}
/** Persisted state problems. */
export class StateError extends RampartError {}

/** Narrowing helper for catch blocks. */
export function isRampartError(value: unknown): value is RampartError {
  return value instanceof RampartError;
}
