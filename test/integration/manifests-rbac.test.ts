// The CA's RBAC in manifests/base is exactly the least privilege DESIGN.md section 9 needs, and
// the rbacGrants()/requestAttributes()/isAllowed() helpers other tests use agree with RBAC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describe, isAllowed, rbacGrants, requestAttributes, type RbacGrant } from '../helpers/manifests-rbac.js';
import { findKubectl, kubectlMissing, readKustomizationResources, renderKustomize } from '../helpers/manifests-render.js';

const kubectl = findKubectl();
const summary = (grants: RbacGrant[]) =>
  grants.map((g) => `${g.scope}${g.namespace ? `:${g.namespace}` : ''} ${g.apiGroup || 'core'}/${g.resource} ${g.verbs.join(',')}`).sort();

test('rbac: rampart-ca is granted exactly what it needs, nothing wildcarded', () => {
  const grants = rbacGrants();
  assert.deepEqual(summary(grants), [
    'cluster authentication.k8s.io/tokenreviews create',
    'cluster core/configmaps create,get,list,update,watch',
    'cluster core/namespaces list,watch',
    'namespace:rampart-system coordination.k8s.io/leases create,get,update',
    'namespace:rampart-system core/secrets create,get,list,update,watch',
  ]);
  for (const g of grants) {
    assert.ok(!g.verbs.includes('*') && g.resource !== '*' && g.apiGroup !== '*', `wildcard in ${g.role}`);
    assert.ok(!g.verbs.includes('delete') && !g.verbs.includes('deletecollection'), `${g.role} may delete`);
  }
});

test('rbac: other subjects get nothing from the base', () => {
  assert.deepEqual(rbacGrants({ namespace: 'rampart-system', name: 'default' }), []);
  assert.deepEqual(rbacGrants({ namespace: 'shop', name: 'rampart-ca' }), []);
});

test('rbac: the file fallback (no kubectl) yields the same grants as kubectl kustomize', { skip: kubectl ? false : kubectlMissing }, () => {
  const rendered = renderKustomize('manifests/base', kubectl!);
  assert.deepEqual(rbacGrants(undefined, readKustomizationResources('manifests/base')), rbacGrants(undefined, rendered));
});

test('rbac: requestAttributes maps API requests as kube-apiserver does', () => {
  const cases: [string, string, string][] = [
    ['POST', '/apis/authentication.k8s.io/v1/tokenreviews', 'create tokenreviews (authentication.k8s.io) (cluster)'],
    ['GET', '/api/v1/namespaces?watch=true&resourceVersion=5', 'watch namespaces (core) (cluster)'],
    ['GET', '/api/v1/namespaces', 'list namespaces (core) (cluster)'],
    ['GET', '/api/v1/namespaces/shop', 'get namespaces shop (core) in shop'],
    ['GET', '/api/v1/configmaps?labelSelector=a%3Db', 'list configmaps (core) (cluster)'],
    ['GET', '/api/v1/watch/configmaps', 'watch configmaps (core) (cluster)'],
    ['GET', '/api/v1/namespaces/shop/configmaps/rampart-root-cert', 'get configmaps rampart-root-cert (core) in shop'],
    ['PUT', '/api/v1/namespaces/shop/configmaps/rampart-root-cert', 'update configmaps rampart-root-cert (core) in shop'],
    ['POST', '/api/v1/namespaces/shop/configmaps', 'create configmaps (core) in shop'],
    ['PATCH', '/api/v1/namespaces/rampart-system/secrets/rampart-ca', 'patch secrets rampart-ca (core) in rampart-system'],
    ['GET', '/api/v1/namespaces/rampart-system/secrets?fieldSelector=metadata.name%3Drampart-ca&watch=1', 'watch secrets (core) in rampart-system'],
    ['DELETE', '/api/v1/namespaces/shop/configmaps', 'deletecollection configmaps (core) in shop'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/rampart-system/leases/rampart-ca', 'update leases rampart-ca (coordination.k8s.io) in rampart-system'],
    ['PUT', '/api/v1/namespaces/shop/status', 'update namespaces/status shop (core) in shop'],
    ['GET', '/api/v1/namespaces/shop/pods/p1/log', 'get pods/log p1 (core) in shop'],
  ];
  for (const [method, url, expected] of cases) assert.equal(describe(requestAttributes(method, url)), expected, `${method} ${url}`);
  assert.throws(() => requestAttributes('GET', '/healthz'), /not a resource request/);
});

test('rbac: isAllowed follows the grants, their scope and verbs', () => {
  const grants = rbacGrants();
  const allowed = (method: string, url: string) => isAllowed(grants, requestAttributes(method, url));
  assert.ok(allowed('POST', '/apis/authentication.k8s.io/v1/tokenreviews'));
  assert.ok(allowed('GET', '/api/v1/namespaces?watch=true'));
  assert.ok(allowed('PUT', '/api/v1/namespaces/shop/configmaps/rampart-root-cert'));
  assert.ok(allowed('POST', '/api/v1/namespaces/kube-public/configmaps'));
  assert.ok(allowed('GET', '/api/v1/namespaces/rampart-system/secrets/rampart-ca'));
  assert.ok(allowed('POST', '/apis/coordination.k8s.io/v1/namespaces/rampart-system/leases'));
  assert.ok(allowed('PUT', '/apis/coordination.k8s.io/v1/namespaces/rampart-system/leases/rampart-ca'));

  assert.ok(!allowed('GET', '/api/v1/namespaces/shop/secrets/x'), 'secrets only in rampart-system');
  assert.ok(!allowed('GET', '/api/v1/secrets'), 'no cluster-wide secrets');
  assert.ok(!allowed('PATCH', '/api/v1/namespaces/rampart-system/secrets/rampart-ca'), 'no patch');
  assert.ok(!allowed('DELETE', '/api/v1/namespaces/shop/configmaps/rampart-root-cert'), 'no delete');
  assert.ok(!allowed('GET', '/apis/coordination.k8s.io/v1/namespaces/rampart-system/leases?watch=true'), 'no lease watch');
  assert.ok(!allowed('PUT', '/api/v1/namespaces/shop'), 'namespaces are read-only');
  assert.ok(!allowed('GET', '/api/v1/namespaces/shop/pods'));

  const named: RbacGrant[] = [{ role: 'Role/x/y', scope: 'namespace', namespace: 'x', apiGroup: '', resource: 'secrets', verbs: ['get'], resourceNames: ['a'] }];
  assert.ok(isAllowed(named, requestAttributes('GET', '/api/v1/namespaces/x/secrets/a')));
  assert.ok(!isAllowed(named, requestAttributes('GET', '/api/v1/namespaces/x/secrets/b')));
  assert.ok(!isAllowed(named, requestAttributes('GET', '/api/v1/namespaces/x/secrets')));
  const wild: RbacGrant[] = [{ role: 'ClusterRole/w', scope: 'cluster', apiGroup: '*', resource: '*', verbs: ['*'] }];
  assert.ok(isAllowed(wild, requestAttributes('DELETE', '/apis/apps/v1/namespaces/a/deployments/b')));
});
