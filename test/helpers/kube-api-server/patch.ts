/** PATCH bodies: JSON merge patch (RFC 7386, also used for strategic merge on these map-only kinds) and JSON patch (RFC 6902). */
import { errors } from './status.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386 merge: null deletes, objects merge recursively, everything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw errors.badRequest(`invalid JSON pointer "${path}"`);
  return path.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 JSON patch with add, remove, replace and test. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw errors.badRequest('json patch must be an array of operations');
  const root = { doc: structuredClone(doc) as unknown };
  for (const op of ops as Array<{ op?: string; path?: string; value?: unknown }>) {
    const parts = ['doc', ...pointer(op.path ?? '')];
    const last = parts.pop() as string;
    let parent: unknown = root;
    for (const p of parts) {
      parent = (parent as Record<string, unknown>)?.[p];
      if (parent === undefined || parent === null) throw errors.badRequest(`jsonpatch ${op.op ?? ''} operation does not apply: doc is missing path: ${op.path ?? ''}`);
    }
    const container = parent as Record<string, unknown> | unknown[];
    const index = Array.isArray(container) ? (last === '-' ? container.length : Number(last)) : -1;
    switch (op.op) {
      case 'add':
        if (Array.isArray(container)) container.splice(index, 0, op.value);
        else container[last] = op.value;
        break;
      case 'replace':
      case 'remove':
      case 'test': {
        const exists = Array.isArray(container) ? index < container.length : Object.hasOwn(container, last);
        if (!exists) throw errors.badRequest(`jsonpatch ${op.op} operation does not apply: doc is missing key: ${op.path ?? ''}`);
        const current = Array.isArray(container) ? container[index] : container[last];
        if (op.op === 'test') {
          if (JSON.stringify(current) !== JSON.stringify(op.value)) throw errors.invalid('JSONPatch', { resource: 'JSONPatch', group: '' }, op.path ?? '', 'testing value failed');
        } else if (op.op === 'remove') {
          if (Array.isArray(container)) container.splice(index, 1);
          else delete container[last];
        } else if (Array.isArray(container)) container[index] = op.value;
        else container[last] = op.value;
        break;
      }
      default:
        throw errors.badRequest(`unsupported json patch operation "${String(op.op)}"`);
    }
  }
  return root.doc;
}
