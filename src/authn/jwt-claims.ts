/**
 * Reads a workload identity out of the verified claims of a Kubernetes projected
 * service-account token.
 */
import type { JWTPayload } from 'jose';
import { AuthenticationError } from '../core/errors.js';
import { validatePathSegment, type WorkloadIdentity } from '../core/identity.js';

const SA_PREFIX = 'system:serviceaccount:';

function segmentOrReject(value: string, what: string): string {
  try {
    return validatePathSegment(value);
  } catch {
    throw new AuthenticationError(`token ${what} is not a valid SPIFFE path segment`);
  }
}

function objectClaim(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Maps `sub: system:serviceaccount:<ns>:<sa>` plus the optional `kubernetes.io` claim to a
 * WorkloadIdentity. Throws AuthenticationError for any other subject, and when the
 * `kubernetes.io` claim contradicts the subject (a token must not name two workloads).
 */
export function identityFromServiceAccountClaims(payload: JWTPayload, trustDomain: string): WorkloadIdentity {
  const sub = payload.sub;
  if (typeof sub !== 'string' || !sub.startsWith(SA_PREFIX)) {
    throw new AuthenticationError('token subject is not a Kubernetes service account (system:serviceaccount:<ns>:<sa>)');
  }
  const parts = sub.slice(SA_PREFIX.length).split(':');
  if (parts.length !== 2) throw new AuthenticationError('token subject is not of the form system:serviceaccount:<ns>:<sa>');
  const namespace = segmentOrReject(parts[0] ?? '', 'namespace');
  const serviceAccount = segmentOrReject(parts[1] ?? '', 'service account');

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
