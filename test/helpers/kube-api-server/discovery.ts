/**
 * API discovery (`/api`, `/api/v1`, `/apis`, `/apis/<group>/<version>`), built from RESOURCES, so
 * kubectl and other discovery-driven clients can find what this test server serves.
 */
import { RESOURCES, type ResourceType } from './resources.js';

const STORED_VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
// Served beside the stored types: create-only reviews.
const TOKEN_REVIEW = { group: 'authentication.k8s.io', version: 'v1', plural: 'tokenreviews', kind: 'TokenReview', namespaced: false };

function resourceEntry(r: ResourceType, verbs: readonly string[]): object {
  return { name: r.plural, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs };
}

function groupVersions(): Array<{ group: string; version: string }> {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of [...RESOURCES, TOKEN_REVIEW]) if (r.group !== '') seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()];
}

/** The discovery document for `pathname`, or undefined when it is not a discovery path. */
export function discoveryDocument(pathname: string, serverAddress: string): object | undefined {
  const path = pathname.replace(/\/+$/, '');
  if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
  if (path === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groupVersions().map(({ group, version }) => {
        const gv = { groupVersion: `${group}/${version}`, version };
        return { name: group, versions: [gv], preferredVersion: gv };
      }),
    };
  }
  const match = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (match === null) return undefined;
  const group = match[2] ?? '';
  const version = match[1] ?? match[3] ?? '';
  const resources = [
    ...RESOURCES.filter((r) => r.group === group && r.version === version).map((r) => resourceEntry(r, STORED_VERBS)),
    ...(TOKEN_REVIEW.group === group && TOKEN_REVIEW.version === version ? [resourceEntry(TOKEN_REVIEW, ['create'])] : []),
  ];
  if (resources.length === 0) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? version : `${group}/${version}`, resources };
}
