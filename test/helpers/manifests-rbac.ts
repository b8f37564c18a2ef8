/**
 * What manifests/base grants the CA's ServiceAccount in RBAC, in a form a test can compare with
 * the API calls the code really makes (e.g. from a Kubernetes API test server's request log):
 *
 *   const grants = rbacGrants();
 *   for (const req of server.requests) {
 *     const attrs = requestAttributes(req.method, req.url);
 *     assert.ok(isAllowed(grants, attrs), `RBAC does not allow ${describe(attrs)}`);
 *   }
 *   // and the converse: every granted verb is used (least privilege)
 */
import { findKubectl, readKustomizationResources, renderKustomize, type K8sObject } from './manifests-render.js';

/** One (apiGroup, resource) rule of a role bound to the subject, with where it applies. */
export interface RbacGrant {
  /** `ClusterRole/<name>` or `Role/<namespace>/<name>`: the role the rule comes from. */
  role: string;
  /** `cluster`: every namespace and cluster-scoped objects; `namespace`: only `namespace`. */
  scope: 'cluster' | 'namespace';
  namespace?: string;
  /** API group, `''` for the core group. */
  apiGroup: string;
  /** Plural resource, with `/subresource` when the rule names one. */
  resource: string;
  /** Sorted verbs. */
  verbs: string[];
  /** Set when the rule is restricted to named objects. */
  resourceNames?: string[];
}

/** RBAC attributes of one API request, as kube-apiserver's RequestInfo derives them. */
export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Binding extends K8sObject {
  roleRef: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

/** The objects of manifests/base: rendered by kubectl when present, else read from its files. */
function baseObjects(): K8sObject[] {
  const kubectl = findKubectl();
  return kubectl ? renderKustomize('manifests/base', kubectl) : readKustomizationResources('manifests/base');
}

/**
 * Every rule bound to `subject` (default: ServiceAccount rampart-system/rampart-ca) by the
 * RoleBindings and ClusterRoleBindings in `objects` (default: manifests/base), one entry per
 * (role, apiGroup, resource), sorted. Bindings to roles that are not in `objects` throw.
 */
export function rbacGrants(
  subject: { namespace: string; name: string } = { namespace: 'rampart-system', name: 'rampart-ca' },
  objects: K8sObject[] = baseObjects(),
): RbacGrant[] {
  const roles = new Map<string, PolicyRule[]>();
  for (const o of objects) {
    if (o.apiVersion !== 'rbac.authorization.k8s.io/v1') continue;
    if (o.kind === 'ClusterRole') roles.set(`ClusterRole/${o.metadata.name}`, (o.rules as PolicyRule[]) ?? []);
    if (o.kind === 'Role') roles.set(`Role/${o.metadata.namespace}/${o.metadata.name}`, (o.rules as PolicyRule[]) ?? []);
  }
  const grants: RbacGrant[] = [];
  for (const o of objects) {
    if (o.kind !== 'ClusterRoleBinding' && o.kind !== 'RoleBinding') continue;
    const b = o as Binding;
    const bound = (b.subjects ?? []).some(
      (s) => s.kind === 'ServiceAccount' && s.name === subject.name && s.namespace === subject.namespace,
    );
    if (!bound) continue;
    const roleKey =
      b.roleRef.kind === 'ClusterRole' ? `ClusterRole/${b.roleRef.name}` : `Role/${b.metadata.namespace}/${b.roleRef.name}`;
    const rules = roles.get(roleKey);
    if (!rules) throw new Error(`${b.kind} ${b.metadata.name} refers to missing ${roleKey}`);
    const scope = b.kind === 'ClusterRoleBinding' ? 'cluster' : 'namespace';
    for (const rule of rules) {
      for (const apiGroup of rule.apiGroups ?? ['']) {
        for (const resource of rule.resources ?? []) {
          grants.push({
            role: roleKey,
            scope,
            ...(scope === 'namespace' ? { namespace: b.metadata.namespace } : {}),
            apiGroup,
            resource,
            verbs: [...rule.verbs].sort(),
            ...(rule.resourceNames?.length ? { resourceNames: [...rule.resourceNames].sort() } : {}),
          });
        }
      }
    }
  }
  const key = (g: RbacGrant) => `${g.scope} ${g.namespace ?? ''} ${g.apiGroup} ${g.resource} ${g.role}`;
  return grants.sort((a, b) => key(a).localeCompare(key(b)));
}

/** Subresources of namespaces themselves (`/api/v1/namespaces/x/status`), as kube-apiserver lists them. */
const namespaceSubresources = new Set(['status', 'finalize']);

/**
 * The RBAC attributes of a request to the Kubernetes API (method and path with query), e.g.
 * `GET /api/v1/namespaces/shop/configmaps?watch=true` -> watch configmaps in shop.
 */
export function requestAttributes(method: string, url: string): RequestAttributes {
  const parsed = new URL(url, 'http://api.invalid');
  let parts = parsed.pathname.split('/').filter(Boolean);
  let apiGroup: string;
  if (parts[0] === 'api') {
    apiGroup = '';
    parts = parts.slice(2);
  } else if (parts[0] === 'apis') {
    apiGroup = parts[1] ?? '';
    parts = parts.slice(3);
  } else {
    throw new Error(`not a resource request: ${url}`);
  }
  let legacyWatch = false;
  if (parts[0] === 'watch') {
    legacyWatch = true;
    parts = parts.slice(1);
  }
  let namespace: string | undefined;
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1];
    if (parts.length > 2 && !namespaceSubresources.has(parts[2]!)) parts = parts.slice(2);
  }
  const [resource, name, subresource] = parts;
  if (!resource) throw new Error(`no resource in ${url}`);
  const watchParam = parsed.searchParams.get('watch');
  const watching = legacyWatch || watchParam === 'true' || watchParam === '1';
  let verb: string;
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      verb = name ? (legacyWatch ? 'watch' : 'get') : watching ? 'watch' : 'list';
      break;
    case 'POST':
      verb = 'create';
      break;
    case 'PUT':
      verb = 'update';
      break;
    case 'PATCH':
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name ? 'delete' : 'deletecollection';
      break;
    default:
      throw new Error(`unexpected method ${method} for ${url}`);
  }
  // As in kube-apiserver, GET /api/v1/namespaces/x has namespace x (and name x).
  return {
    verb,
    apiGroup,
    resource,
    ...(subresource ? { subresource } : {}),
    ...(namespace ? { namespace } : {}),
    ...(name ? { name } : {}),
  };
}

/** Whether any grant authorizes the request, with RBAC's matching rules (wildcards included). */
export function isAllowed(grants: RbacGrant[], req: RequestAttributes): boolean {
  const resource = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  return grants.some((g) => {
    if (g.scope === 'namespace' && (req.namespace === undefined || req.namespace !== g.namespace)) return false;
    if (g.apiGroup !== '*' && g.apiGroup !== req.apiGroup) return false;
    if (g.resource !== '*' && g.resource !== resource) return false;
    if (!g.verbs.includes('*') && !g.verbs.includes(req.verb)) return false;
    if (g.resourceNames && (req.name === undefined || !g.resourceNames.includes(req.name))) return false;
    return true;
  });
}

/** `watch configmaps (core) in shop` — for assertion messages. */
export function describe(req: RequestAttributes): string {
  const res = req.subresource ? `${req.resource}/${req.subresource}` : req.resource;
  const group = req.apiGroup === '' ? 'core' : req.apiGroup;
  const where = req.namespace ? ` in ${req.namespace}` : ' (cluster)';
  return `${req.verb} ${res}${req.name ? ` ${req.name}` : ''} (${group})${where}`;
}
