/**
 * Reads a workload identity out of the verified claims of a Kubernetes projected
 * service-account token.
 */
import type { JWTPayload } from 'jose';
import { AuthenticationError } from '../core/errors.js';
import { validatePathSegment, type WorkloadIdentity } from '../core/identity.js';

const SA_PREFIX = 'system:serviceaccount:';

/**
 * Kubernetes' own name limits: a namespace is a DNS label (63 characters), a service account a
 * DNS subdomain (253). A cluster never issues longer names, and they keep every workload's SPIFFE
 * ID far below the spec's 2048 bytes.
 */
export const MAX_NAMESPACE_CHARS = 63;
export const MAX_SERVICE_ACCOUNT_CHARS = 253;

function segmentOrReject(value: string, what: string, maxChars: number): string {
  try {
    validatePathSegment(value);
  } catch {
    throw new AuthenticationError(`token ${what} is not a valid SPIFFE path segment`);
  }
  // A signed claim no cluster would make is as unusable as a malformed one: refused like it.
  if (value.length > maxChars) throw new AuthenticationError(`token ${what} is ${value.length} characters long; Kubernetes allows at most ${maxChars}`);
  return value;
}

function objectClaim(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Maps `sub: system:serviceaccount:<ns>:<sa>` plus the optional `kubernetes.io` claim to a
 * WorkloadIdentity. Throws AuthenticationError for any other subject, for names that are no
 * SPIFFE path segment or over Kubernetes' limits, and when the `kubernetes.io` claim contradicts
 * the subject (a token must not name two workloads).
 */
export function identityFromServiceAccountClaims(payload: JWTPayload, trustDomain: string): WorkloadIdentity {
  const sub = payload.sub;
  if (typeof sub !== 'string' || !sub.startsWith(SA_PREFIX)) {
    throw new AuthenticationError('token subject is not a Kubernetes service account (system:serviceaccount:<ns>:<sa>)');
  }
  const parts = sub.slice(SA_PREFIX.length).split(':');
  if (parts.length !== 2) throw new AuthenticationError('token subject is not of the form system:serviceaccount:<ns>:<sa>');
  const namespace = segmentOrReject(parts[0] ?? '', 'namespace', MAX_NAMESPACE_CHARS);
  const serviceAccount = segmentOrReject(parts[1] ?? '', 'service account', MAX_SERVICE_ACCOUNT_CHARS);

  const k8s = objectClaim(payload['kubernetes.io']);
  if (k8s === undefined) return { trustDomain, namespace, serviceAccount };
  if (k8s['namespace'] !== undefined && k8s['namespace'] !== namespace) {
    throw new AuthenticationError('token kubernetes.io.namespace disagrees with its subject');
  }
  const sa = objectClaim(k8s['serviceaccount']);
  if (sa?.['name'] !== undefined && sa['name'] !== serviceAccount) {
    throw new AuthenticationError('token kubernetes.io.serviceaccount.name disagrees with its subject');
  }
  const pod = objectClaim(k8s['pod']);
  const podName = typeof pod?.['name'] === 'string' ? pod['name'] : undefined;
  const podUid = typeof pod?.['uid'] === 'string' ? pod['uid'] : undefined;
  return {
    trustDomain,
    namespace,
    serviceAccount,
    ...(podName === undefined ? {} : { podName }),
    ...(podUid === undefined ? {} : { podUid }),
  };
}
