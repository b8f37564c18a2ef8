/** Builders for the metav1.Status objects the real API server answers errors with. */

/** A Kubernetes `Status` body. */
export interface KubeStatus {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Failure' | 'Success';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: unknown[] };
  readonly code: number;
}

/** Thrown inside request handling; the router turns it into an HTTP response with this Status. */
export class KubeApiError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
  get code(): number {
    return this.status.code;
  }
}

/** Target of an error: the resource plural, its API group and the object name. */
export interface ErrorTarget {
  readonly resource: string;
  readonly group: string;
  readonly name?: string;
}

function qualified(t: ErrorTarget): string {
  return t.group === '' ? t.resource : `${t.resource}.${t.group}`;
}

function failure(code: number, reason: string, message: string, t?: ErrorTarget, extra?: object): KubeApiError {
  const details = t === undefined ? undefined : { ...(t.name === undefined ? {} : { name: t.name }), ...(t.group === '' ? {} : { group: t.group }), kind: t.resource, ...extra };
  return new KubeApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  });
}

export const errors = {
  notFound: (t: ErrorTarget) => failure(404, 'NotFound', `${qualified(t)} "${t.name ?? ''}" not found`, t),
  alreadyExists: (t: ErrorTarget) => failure(409, 'AlreadyExists', `${qualified(t)} "${t.name ?? ''}" already exists`, t),
  conflict: (t: ErrorTarget) =>
    failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(t)} "${t.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`, t),
  preconditionFailed: (t: ErrorTarget, why: string) => failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(t)} "${t.name ?? ''}": ${why}`, t),
  invalid: (kind: string, t: ErrorTarget, field: string, why: string) =>
    failure(422, 'Invalid', `${kind} "${t.name ?? ''}" is invalid: ${field}: ${why}`, { ...t, resource: kind }, { causes: [{ reason: 'FieldValueInvalid', message: why, field }] }),
  badRequest: (message: string) => failure(400, 'BadRequest', message),
  unauthorized: () => failure(401, 'Unauthorized', 'Unauthorized'),
  forbidden: (message: string, t?: ErrorTarget) => failure(403, 'Forbidden', message, t),
  methodNotAllowed: () => failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'),
  unsupportedMediaType: (type: string) => failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got ${type})`),
  pathNotFound: () => failure(404, 'NotFound', 'the server could not find the requested resource'),
  expired: (message: string) => failure(410, 'Expired', message),
  internal: (message: string) => failure(500, 'InternalError', `Internal error occurred: ${message}`),
};

/** The Status a successful delete of a plain object answers with. */
export function deleteSuccess(t: ErrorTarget, uid: string): KubeStatus {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { name: t.name ?? '', ...(t.group === '' ? {} : { group: t.group }), kind: t.resource, uid },
    code: 200,
  };
}
