/**
 * Renders the kustomize directories under manifests/ with `kubectl kustomize` and validates
 * every rendered object against the Kubernetes OpenAPI schema (kubernetes-models), plus a
 * strict unknown-field check (kubernetes-models' schemas allow unknown properties, so a typo
 * such as `readOnlyRootFileSystem` would otherwise pass and be silently dropped).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as clientNode from '@kubernetes/client-node';
import * as models from 'kubernetes-models';
import { parseAllDocuments } from 'yaml';

/** Repository root (this file lives in test/helpers/). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A rendered Kubernetes object: only the type meta is assumed. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

/**
 * The kubectl to use: `$KUBECTL` if set, else the first executable `kubectl` on PATH that
 * answers `kubectl version --client`. Undefined only when there truly is none.
 */
export function findKubectl(): string | undefined {
  const explicit = process.env.KUBECTL;
  if (explicit) {
    const probe = spawnSync(explicit, ['version', '--client'], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status !== 0) throw new Error(`$KUBECTL=${explicit} does not run: ${probe.error?.message ?? probe.stderr}`);
    return explicit;
  }
  const candidates: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir) candidates.push(join(dir, 'kubectl'));
  }
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
    } catch {
      continue;
    }
    const probe = spawnSync(path, ['version', '--client'], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) return path;
  }
  return undefined;
}

/** Message for `test(..., { skip })` when kubectl is missing; CI installs it, so say how. */
export const kubectlMissing =
  'kubectl not found (set $KUBECTL or install it: apt-get install -y kubernetes-client)';

/** Parses a multi-document YAML stream into objects, failing on any YAML error. */
export function parseYamlStream(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      throw new Error(`${source}: YAML error: ${doc.errors.map((e) => e.message).join('; ')}`);
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new Error(`${source}: a document is not a mapping`);
    }
    const obj = value as Partial<K8sObject>;
    if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
      throw new Error(`${source}: a document lacks apiVersion/kind`);
    }
    if (typeof obj.metadata?.name !== 'string') {
      throw new Error(`${source}: ${obj.kind} without metadata.name`);
    }
    out.push(obj as K8sObject);
  }
  return out;
}

/** `kubectl kustomize <dir>` (dir relative to the repository root), parsed. Throws on failure. */
export function renderKustomize(dir: string, kubectl: string): K8sObject[] {
  const abs = resolve(repoRoot, dir);
  const run = spawnSync(kubectl, ['kustomize', abs], {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  if (run.error) throw run.error;
  if (run.status !== 0) {
    throw new Error(`kubectl kustomize ${dir} failed (${run.status}): ${run.stderr}`);
  }
  return parseYamlStream(run.stdout, `kubectl kustomize ${dir}`);
}

/**
 * Reads the files a kustomization lists under `resources:` without kustomize. Only valid for
 * kustomizations that transform nothing the caller looks at (manifests/base changes only
 * container images), which a test checks against the kubectl rendering.
 */
export function readKustomizationResources(dir: string): K8sObject[] {
  const abs = resolve(repoRoot, dir);
  const [kustomization] = parseAllDocuments(readFileSync(join(abs, 'kustomization.yaml'), 'utf8'));
  const resources = (kustomization?.toJS() as { resources?: unknown } | undefined)?.resources;
  if (!Array.isArray(resources)) throw new Error(`${dir}/kustomization.yaml lists no resources`);
  return resources.flatMap((file: unknown) => {
    if (typeof file !== 'string') throw new Error(`${dir}: resource entry is not a string`);
    return parseYamlStream(readFileSync(join(abs, file), 'utf8'), `${dir}/${file}`);
  });
}

type ModelClass = new (data: unknown) => { validate(): void };

/**
 * apiVersion/kind -> kubernetes-models class, from every group and version the package exports
 * (the root exports groups, a group exports versions, a version exports classes).
 */
const modelRegistry: ReadonlyMap<string, ModelClass> = (() => {
  const map = new Map<string, ModelClass>();
  const visit = (ns: Record<string, unknown>, depth: number): void => {
    for (const exported of Object.values(ns)) {
      if (typeof exported === 'function') {
        const cls = exported as unknown as { apiVersion?: unknown; kind?: unknown };
        if (typeof cls.apiVersion === 'string' && typeof cls.kind === 'string') {
          map.set(`${cls.apiVersion}/${cls.kind}`, exported as unknown as ModelClass);
        }
      } else if (exported && typeof exported === 'object' && depth < 3) {
        visit(exported as Record<string, unknown>, depth + 1);
      }
    }
  };
  visit(models as unknown as Record<string, unknown>, 0);
  return map;
})();

/** The kubernetes-models class for an apiVersion/kind, or undefined for unknown kinds. */
export function modelFor(apiVersion: string, kind: string): ModelClass | undefined {
  return modelRegistry.get(`${apiVersion}/${kind}`);
}

interface Attribute {
  baseName: string;
  type: string;
}
type AttributeMaps = Record<string, { attributeTypeMap?: Attribute[] } | undefined>;
const clientModels = clientNode as unknown as AttributeMaps;
const leafTypes = new Set(['string', 'number', 'boolean', 'Date', 'any', 'object', 'IntOrString']);

/** client-node's model class name for an apiVersion/kind: apps/v1 Deployment -> V1Deployment. */
function clientModelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? apiVersion;
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${kind}`;
}

/** Lists properties that no field of the Kubernetes type declares, with their JSON paths. */
function unknownFields(value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined || leafTypes.has(type)) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array?.[1]) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`, out));
    return;
  }
  const dict = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (dict?.[1]) {
    if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) unknownFields(v, dict[1], `${path}.${k}`, out);
    }
    return;
  }
  const attrs = clientModels[type]?.attributeTypeMap;
  if (!attrs) return; // a type without a field map (e.g. a quantity) is a leaf; the schema checks it
  if (typeof value !== 'object' || Array.isArray(value)) return; // schema validation reports it
  const byName = new Map(attrs.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const fieldType = byName.get(k);
    if (fieldType === undefined) out.push(`${path}.${k}: unknown field of ${type}`);
    else unknownFields(v, fieldType, `${path}.${k}`, out);
  }
}

/**
 * Validates one object: its kind must be a known Kubernetes kind, it must satisfy the OpenAPI
 * schema, and it must carry no field that its type does not declare. Returns the problems found
 * (empty when valid).
 */
export function validateObject(obj: K8sObject): string[] {
  const where = `${obj.apiVersion} ${obj.kind} ${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) return [`${where}: unknown apiVersion/kind (no kubernetes-models class)`];
  const problems: string[] = [];
  try {
    new Model(structuredClone(obj)).validate();
  } catch (err) {
    problems.push(`${where}: schema: ${(err as Error).message}`);
  }
  const clientType = clientModelName(obj.apiVersion, obj.kind);
  if (!clientModels[clientType]?.attributeTypeMap) {
    problems.push(`${where}: no field map (${clientType}) for the unknown-field check`);
  } else {
    const unknown: string[] = [];
    unknownFields(obj, clientType, '', unknown);
    problems.push(...unknown.map((u) => `${where}: ${u}`));
  }
  return problems;
}

/** The single object of a kind/name (and namespace, if given); throws when absent or ambiguous. */
export function findObject(objects: K8sObject[], kind: string, name: string, namespace?: string): K8sObject {
  const hits = objects.filter(
    (o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace),
  );
  if (hits.length !== 1) throw new Error(`expected one ${kind} ${namespace ?? '*'}/${name}, found ${hits.length}`);
  return hits[0]!;
}
