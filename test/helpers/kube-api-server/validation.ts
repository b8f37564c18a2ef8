/** Per-kind defaulting and validation, matching what the real API server refuses. */
import { nameProblem, type ResourceType } from './resources.js';
import { errors, type ErrorTarget } from './status.js';

/** A stored object (JSON). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** The metadata fields the server manages or reads. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

const MAX_DATA_BYTES = 1024 * 1024;
const DATA_KEY = /^[-._a-zA-Z0-9]+$/;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** metav1.MicroTime is parsed with exactly this layout; JavaScript's toISOString() (3 digits) fails it. */
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

function isStringMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkStringMap(r: ResourceType, t: ErrorTarget, field: string, v: unknown): void {
  if (v === undefined || v === null) return;
  if (!isStringMap(v)) throw errors.badRequest(`${r.kind} in version "v1" cannot be handled as a ${r.kind}: ${field}: expected map, got ${typeof v}`);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw errors.badRequest(`${r.kind} in version "v1" cannot be handled as a ${r.kind}: ${field}.${k}: expected string`);
  }
}

function checkDataKeys(r: ResourceType, t: ErrorTarget, field: string, v: Record<string, unknown> | undefined): number {
  let size = 0;
  for (const [k, val] of Object.entries(v ?? {})) {
    if (!DATA_KEY.test(k)) throw errors.invalid(r.kind, t, `${field}[${k}]`, `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`);
    size += Buffer.byteLength(String(val));
  }
  return size;
}

/**
 * Applies defaults and validation to a candidate object. Mutates and returns `obj`. Throws a
 * KubeApiError with the Status the real server would send.
 */
export function validateAndDefault(r: ResourceType, obj: KubeObject, t: ErrorTarget): KubeObject {
  const name = obj.metadata.name ?? '';
  const problem = nameProblem(r, name);
  if (problem !== null) throw errors.invalid(r.kind, t, 'metadata.name', `Invalid value: "${name}": ${problem}`);
  for (const field of ['labels', 'annotations'] as const) checkStringMap(r, t, `metadata.${field}`, obj.metadata[field]);

  switch (r.kind) {
    case 'ConfigMap': {
      checkStringMap(r, t, 'data', obj['data']);
      checkStringMap(r, t, 'binaryData', obj['binaryData']);
      for (const [k, v] of Object.entries((obj['binaryData'] as Record<string, string> | undefined) ?? {})) {
        if (!STRICT_BASE64.test(v)) throw errors.badRequest(`ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data in binaryData[${k}]`);
        if (Object.hasOwn((obj['data'] as Record<string, string> | undefined) ?? {}, k)) throw errors.invalid(r.kind, t, `data[${k}]`, `Invalid value: "${k}": duplicate of key present in data`);
      }
      const size = checkDataKeys(r, t, 'data', obj['data'] as Record<string, unknown> | undefined) + checkDataKeys(r, t, 'binaryData', obj['binaryData'] as Record<string, unknown> | undefined);
      if (size > MAX_DATA_BYTES) throw errors.invalid(r.kind, t, '[]', 'Too long: must have at most 1048576 bytes');
      break;
    }
    case 'Secret': {
      checkStringMap(r, t, 'data', obj['data']);
      checkStringMap(r, t, 'stringData', obj['stringData']);
      const data: Record<string, string> = { ...((obj['data'] as Record<string, string> | undefined) ?? {}) };
      for (const [k, v] of Object.entries(data)) {
        if (!STRICT_BASE64.test(v)) throw errors.badRequest(`Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[${k}]`);
      }
      // stringData is write-only: the server folds it into data and never returns it.
      for (const [k, v] of Object.entries((obj['stringData'] as Record<string, string> | undefined) ?? {})) data[k] = Buffer.from(v, 'utf8').toString('base64');
      delete obj['stringData'];
      if (Object.keys(data).length > 0) obj['data'] = data;
      const size = checkDataKeys(r, t, 'data', data);
      if (size > MAX_DATA_BYTES * 1.4) throw errors.invalid(r.kind, t, 'data', 'Too long: must have at most 1048576 bytes');
      if (obj['type'] === undefined || obj['type'] === '') obj['type'] = 'Opaque';
      break;
    }
    case 'Lease': {
      const spec = obj['spec'];
      if (spec !== undefined && !isStringMap(spec)) throw errors.badRequest('Lease in version "v1" cannot be handled as a Lease: spec: expected object');
      for (const field of ['acquireTime', 'renewTime'] as const) {
        const v = (spec as Record<string, unknown> | undefined)?.[field];
        if (v === undefined || v === null) continue;
        if (typeof v !== 'string' || !MICRO_TIME.test(v)) {
          throw errors.badRequest(`Lease in version "v1" cannot be handled as a Lease: v1.LeaseSpec.${field[0]?.toUpperCase()}${field.slice(1)}: parsing time "${String(v)}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse as RFC3339 with microseconds`);
        }
      }
      const d = (spec as Record<string, unknown> | undefined)?.['leaseDurationSeconds'];
      if (d !== undefined && d !== null && (typeof d !== 'number' || !Number.isInteger(d) || d <= 0)) {
        throw errors.invalid(r.kind, t, 'spec.leaseDurationSeconds', `Invalid value: ${String(d)}: must be greater than 0`);
      }
      break;
    }
    case 'Namespace': {
      obj['spec'] = { finalizers: ['kubernetes'] };
      break;
    }
  }
  return obj;
}
