/**
 * Pod hardening rules every Rampart pod follows (the Pod Security "restricted" profile plus
 * read-only root filesystem and resource bounds). Returns problems instead of asserting, so a
 * test can also prove each rule catches a weakened spec.
 */
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';

/** The UID every Rampart container runs as (distroless "nonroot"). */
export const nonRootUid = 65532;

function containerProblems(pod: V1PodSpec, c: V1Container, where: string): string[] {
  const problems: string[] = [];
  const sc = c.securityContext ?? {};
  const podSc = pod.securityContext ?? {};
  const runAsNonRoot = sc.runAsNonRoot ?? podSc.runAsNonRoot;
  const runAsUser = sc.runAsUser ?? podSc.runAsUser;
  if (runAsNonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
  if (runAsUser !== nonRootUid) problems.push(`${where}: runAsUser is ${runAsUser}, want ${nonRootUid}`);
  if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
  if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
  if (sc.privileged === true) problems.push(`${where}: privileged`);
  if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities not dropped (drop ALL)`);
  if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities`);
  const seccomp = sc.seccompProfile?.type ?? podSc.seccompProfile?.type;
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') problems.push(`${where}: seccomp profile is ${seccomp}`);
  for (const kind of ['requests', 'limits'] as const) {
    for (const resource of ['cpu', 'memory']) {
      if (!c.resources?.[kind]?.[resource]) problems.push(`${where}: no ${kind}.${resource}`);
    }
  }
  return problems;
}

/** Every hardening problem of a pod spec; empty when the pod is hardened. */
export function hardeningProblems(pod: V1PodSpec, where: string): string[] {
  const problems: string[] = [];
  if (pod.hostNetwork || pod.hostPID || pod.hostIPC) problems.push(`${where}: shares a host namespace`);
  if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${where}: pod runAsNonRoot is not true`);
  if (pod.securityContext?.seccompProfile?.type !== 'RuntimeDefault') {
    problems.push(`${where}: pod seccompProfile is not RuntimeDefault`);
  }
  for (const v of pod.volumes ?? []) {
    if (v.hostPath) problems.push(`${where}: hostPath volume ${v.name}`);
  }
  const containers = [...(pod.initContainers ?? []), ...pod.containers];
  if (containers.length === 0) problems.push(`${where}: no containers`);
  for (const c of containers) problems.push(...containerProblems(pod, c, `${where} container ${c.name}`));
  return problems;
}
