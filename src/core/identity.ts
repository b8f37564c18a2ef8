import { BadRequestError } from './errors.js';

/** The workload an authenticator vouched for. */
export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName?: string;
  readonly podUid?: string;
}

/** A parsed, valid SPIFFE ID. */
export interface SpiffeId {
  readonly trustDomain: string;
  /** Path including the leading slash, or '' for the trust-domain ID itself. */
  readonly path: string;
  readonly segments: readonly string[];
}

const SCHEME = 'spiffe://';
const MAX_ID_BYTES = 2048;
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

/** A SPIFFE ID or allow pattern that is not valid; `reason` says why without repeating the input. */
export class InvalidSpiffeIdError extends BadRequestError {
  constructor(
    input: string,
    readonly reason: string,
    what: 'SPIFFE ID' | 'allow pattern' = 'SPIFFE ID',
  ) {
    // Echo at most a short prefix so a huge or hostile input does not flood logs or responses.
    const shown = input.length > 80 ? `${input.slice(0, 80)}…` : input;
    super('RAMPART_ERR_SPIFFE_ID_INVALID', `invalid ${what} "${shown}": ${reason}`);
  }
}

function invalid(input: string, why: string): InvalidSpiffeIdError {
  return new InvalidSpiffeIdError(input, why);
}

/** Validates a trust-domain name (lowercase letters, digits, dot, dash, underscore). */
export function validateTrustDomain(trustDomain: string): string {
  if (trustDomain.length === 0) throw invalid(trustDomain, 'trust domain is empty');
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    throw invalid(trustDomain, 'trust domain may contain only lowercase letters, digits, ".", "-" and "_"');
  }
  return trustDomain;
}

/** Validates one path segment of a SPIFFE ID. */
export function validatePathSegment(segment: string, whole = segment): string {
  if (segment.length === 0) throw invalid(whole, 'path segments must not be empty');
  if (segment === '.' || segment === '..') throw invalid(whole, 'path segments must not be "." or ".."');
  if (!SEGMENT_CHARS.test(segment)) {
    throw invalid(whole, 'path segments may contain only letters, digits, ".", "-" and "_"');
  }
  return segment;
}

/**
 * Parses a SPIFFE ID per the SPIFFE-ID specification: scheme `spiffe`, a trust domain with no
 * port or userinfo, an optional path of non-empty segments, no query or fragment, at most
 * 2048 bytes.
 */
export function parseSpiffeId(input: string): SpiffeId {
  if (Buffer.byteLength(input, 'utf8') > MAX_ID_BYTES) throw invalid(input, 'longer than 2048 bytes');
  if (!input.startsWith(SCHEME)) {
    throw invalid(input, input.toLowerCase().startsWith(SCHEME) ? 'scheme must be lowercase "spiffe"' : 'must start with "spiffe://"');
  }
  const rest = input.slice(SCHEME.length);
  if (rest.includes('?')) throw invalid(input, 'query is not allowed');
  if (rest.includes('#')) throw invalid(input, 'fragment is not allowed');
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (authority.includes('@')) throw invalid(input, 'userinfo is not allowed');
  if (authority.includes(':')) throw invalid(input, 'port is not allowed');
  if (authority.length === 0) throw invalid(input, 'trust domain is missing');
  validateTrustDomain(authority);
  if (path === '') return { trustDomain: authority, path: '', segments: [] };
  if (path === '/') throw invalid(input, 'path must not end with "/"');
  const segments = path.slice(1).split('/');
  for (const segment of segments) validatePathSegment(segment, input);
  return { trustDomain: authority, path, segments };
}

/** True when the input is a valid SPIFFE ID. */
export function isValidSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}

/** Formats a SPIFFE ID from a trust domain and path segments, validating both. */
export function formatSpiffeId(trustDomain: string, ...segments: string[]): string {
  validateTrustDomain(trustDomain);
  // Built once: every signing request formats its caller's ID.
  const id = segments.length === 0 ? `${SCHEME}${trustDomain}` : `${SCHEME}${trustDomain}/${segments.join('/')}`;
  for (const s of segments) validatePathSegment(s, id);
  // Every character is ASCII once validated, so the length is the byte count.
  if (id.length > MAX_ID_BYTES) throw invalid(id, 'longer than 2048 bytes');
  return id;
}

/** The SPIFFE ID of a Kubernetes workload: `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export function workloadSpiffeId(identity: Pick<WorkloadIdentity, 'trustDomain' | 'namespace' | 'serviceAccount'>): string {
  return formatSpiffeId(identity.trustDomain, 'ns', identity.namespace, 'sa', identity.serviceAccount);
}

/** The trust domain's own ID (no path), used as the signing intermediate's URI SAN. */
export function trustDomainId(trustDomain: string): string {
  return formatSpiffeId(trustDomain);
}

/**
 * Reads a workload identity back out of a `/ns/<ns>/sa/<sa>` SPIFFE ID, or returns null when the
 * ID is not of that shape (e.g. the trust-domain ID).
 */
export function identityFromSpiffeId(id: string): WorkloadIdentity | null {
  const parsed = parseSpiffeId(id);
  const [ns, namespace, sa, serviceAccount, ...extra] = parsed.segments;
  if (ns !== 'ns' || sa !== 'sa' || namespace === undefined || serviceAccount === undefined || extra.length > 0) return null;
  return { trustDomain: parsed.trustDomain, namespace, serviceAccount };
}

/**
 * Matches a SPIFFE ID against an allow entry: an exact ID, or a prefix pattern ending in `/*`
 * (`spiffe://td/ns/shop/*` admits every ID below `spiffe://td/ns/shop/`).
 */
export function spiffeIdMatches(pattern: string, id: string): boolean {
  if (pattern.endsWith('/*')) return id.startsWith(pattern.slice(0, -1)) && id.length > pattern.length - 1;
  return pattern === id;
}

/**
 * Validates an allow pattern (exact SPIFFE ID or prefix ending in `/*`). Errors quote the
 * pattern as written: the ID left after cutting `/*` off (`spiffe:/` for `spiffe://*`) would
 * puzzle whoever wrote it.
 */
export function validateAllowPattern(pattern: string): string {
  if (!pattern.endsWith('/*')) {
    parseSpiffeId(pattern);
    return pattern;
  }
  if (pattern === `${SCHEME}*`) throw new InvalidSpiffeIdError(pattern, 'the trust domain is missing before "/*"', 'allow pattern');
  try {
    parseSpiffeId(pattern.slice(0, -2));
  } catch (err) {
    if (err instanceof InvalidSpiffeIdError) throw new InvalidSpiffeIdError(pattern, err.reason, 'allow pattern');
    throw err;
  }
  return pattern;
}
