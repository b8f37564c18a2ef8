/**
 * Builds `@kubernetes/client-node` clients from one of three sources: the in-cluster service
 * account (token + CA files and the API server address, all passed in by the caller; this file
 * reads no environment), a kubeconfig file, or a ready KubeConfig.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ConfigError } from '../core/errors.js';

/** Where kubelet mounts the service-account token, CA and namespace. */
export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** How to reach the API server. */
export type KubeClientSource =
  | {
      readonly kind: 'in-cluster';
      /** KUBERNETES_SERVICE_HOST, as read by the caller's config layer. */
      readonly host: string;
      /** KUBERNETES_SERVICE_PORT. */
      readonly port: string | number;
      /** Directory with `token`, `ca.crt` and `namespace`. Default {@link DEFAULT_SERVICE_ACCOUNT_DIR}. */
      readonly serviceAccountDir?: string;
    }
  | { readonly kind: 'kubeconfig'; readonly path: string; readonly context?: string }
  | { readonly kind: 'explicit'; readonly kubeConfig: k8s.KubeConfig };

/** The API clients Rampart uses, plus the namespace the credentials belong to (if known). */
export interface KubeClients {
  readonly kubeConfig: k8s.KubeConfig;
  readonly core: k8s.CoreV1Api;
  readonly coordination: k8s.CoordinationV1Api;
  readonly authentication: k8s.AuthenticationV1Api;
  /** The pod's namespace (in-cluster) or the context's namespace; undefined when unknown. */
  readonly namespace: string | undefined;
}

function configError(message: string, cause?: unknown): ConfigError {
  return new ConfigError('RAMPART_ERR_CONFIG_INVALID', message, cause === undefined ? undefined : { cause });
}

function inCluster(source: Extract<KubeClientSource, { kind: 'in-cluster' }>): { kc: k8s.KubeConfig; namespace: string | undefined } {
  const dir = source.serviceAccountDir ?? DEFAULT_SERVICE_ACCOUNT_DIR;
  const tokenFile = join(dir, 'token');
  const caFile = join(dir, 'ca.crt');
  for (const f of [tokenFile, caFile]) {
    if (!existsSync(f)) throw configError(`in-cluster Kubernetes access needs ${f}; mount the service-account token or pass a kubeconfig`);
  }
  const host = source.host.trim();
  const port = String(source.port).trim();
  if (host === '' || !/^\d{1,5}$/.test(port)) {
    throw configError('in-cluster Kubernetes access needs KUBERNETES_SERVICE_HOST and a numeric KUBERNETES_SERVICE_PORT');
  }
  const server = `https://${isIPv6(host) ? `[${host}]` : host}:${port}`;
  const kc = new k8s.KubeConfig();
  // The tokenFile auth provider re-reads the file (kubelet rotates projected tokens), so the
  // token is never copied into the config object.
  kc.loadFromOptions({
    clusters: [{ name: 'in-cluster', server, caFile, skipTLSVerify: false }],
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
  const nsFile = join(dir, 'namespace');
  const namespace = existsSync(nsFile) ? readFileSync(nsFile, 'utf8').trim() || undefined : undefined;
  return { kc, namespace };
}

/** Builds a KubeConfig from the source. Throws ConfigError RAMPART_ERR_CONFIG_INVALID on unusable input. */
export function createKubeConfig(source: KubeClientSource): { kubeConfig: k8s.KubeConfig; namespace: string | undefined } {
  switch (source.kind) {
    case 'in-cluster': {
      const { kc, namespace } = inCluster(source);
      return { kubeConfig: kc, namespace };
    }
    case 'kubeconfig': {
      const kc = new k8s.KubeConfig();
      try {
        kc.loadFromFile(source.path);
      } catch (e) {
        throw configError(`cannot load kubeconfig ${source.path}: ${e instanceof Error ? e.message : String(e)}`, e);
      }
      if (source.context !== undefined) {
        if (kc.getContextObject(source.context) === null) throw configError(`kubeconfig ${source.path} has no context "${source.context}"`);
        kc.setCurrentContext(source.context);
      }
      if (kc.getCurrentCluster() === null) throw configError(`kubeconfig ${source.path} has no current cluster; set current-context`);
      return { kubeConfig: kc, namespace: kc.getContextObject(kc.getCurrentContext())?.namespace };
    }
    case 'explicit':
      return { kubeConfig: source.kubeConfig, namespace: source.kubeConfig.getContextObject(source.kubeConfig.getCurrentContext())?.namespace };
  }
}

/** Builds the API clients Rampart needs from one source. */
export function createKubeClients(source: KubeClientSource): KubeClients {
  const { kubeConfig, namespace } = createKubeConfig(source);
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(k8s.CoreV1Api),
    coordination: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
    authentication: kubeConfig.makeApiClient(k8s.AuthenticationV1Api),
    namespace,
  };
}
