/** The resource types the test API server serves, and how URLs map onto them. */

/** One served resource type. */
export interface ResourceType {
  /** API group; '' for core/v1. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** Every stored resource. Add rows here to serve more types with the same generic semantics. */
export const RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
];

/** `apiVersion` field value of a resource type. */
export function apiVersionOf(r: ResourceType): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/** A request URL resolved against the served API paths. */
export interface ParsedPath {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource?: string;
}

/**
 * Parses `/api/v1/...` and `/apis/<group>/<version>/...` paths. Returns null for anything that
 * is not a resource path (the router answers 404 for those).
 */
export function parseResourcePath(pathname: string): ParsedPath | null {
  const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts[1] !== undefined) {
    group = '';
    version = parts[1];
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts[1] !== undefined && parts[2] !== undefined) {
    group = parts[1];
    version = parts[2];
    rest = parts.slice(3);
  } else {
    return null;
  }
  if (rest.length === 0) return null;
  // `namespaces/<ns>/<plural>...` is a namespaced resource; `namespaces[/<name>]` is the namespace itself.
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const [, namespace, plural, name, subresource, ...extra] = rest;
    if (extra.length > 0 || plural === undefined) return null;
    return { group, version, plural, ...(namespace === undefined ? {} : { namespace }), ...(name === undefined ? {} : { name }), ...(subresource === undefined ? {} : { subresource }) };
  }
  const [plural, name, subresource, ...extra] = rest;
  if (extra.length > 0 || plural === undefined) return null;
  return { group, version, plural, ...(name === undefined ? {} : { name }), ...(subresource === undefined ? {} : { subresource }) };
}

/** Finds the served resource type for a parsed path. */
export function findResource(p: Pick<ParsedPath, 'group' | 'version' | 'plural'>): ResourceType | undefined {
  return RESOURCES.find((r) => r.group === p.group && r.version === p.version && r.plural === p.plural);
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why a name is invalid for this resource type, or null when it is fine (namespaces are DNS labels). */
export function nameProblem(r: ResourceType, name: string): string | null {
  if (r.plural === 'namespaces') {
    if (name.length > 63 || !DNS1123_LABEL.test(name)) {
      return `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`;
    }
    return null;
  }
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    return `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`;
  }
  return null;
}
