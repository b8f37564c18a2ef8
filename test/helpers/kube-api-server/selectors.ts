/** Equality-based label and field selectors, as list and watch requests send them. */
import { errors } from './status.js';

type Requirement = { key: string; op: '=' | '!=' | 'exists' | '!exists'; value?: string };

/** A compiled selector: true when the object matches. */
export type Matcher = (obj: KubeObjectLike) => boolean;

/** The part of an object selectors look at. */
export interface KubeObjectLike {
  metadata: { name?: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

function parse(text: string, allowExists: boolean): Requirement[] {
  const out: Requirement[] = [];
  for (const raw of text.split(',')) {
    const term = raw.trim();
    if (term === '') continue;
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (m !== null) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      out.push({ key, op: op === '!=' ? '!=' : '=', value: value.trim() });
    } else if (allowExists && /^!?[A-Za-z0-9./_-]+$/.test(term)) {
      out.push(term.startsWith('!') ? { key: term.slice(1), op: '!exists' } : { key: term, op: 'exists' });
    } else {
      throw errors.badRequest(`unable to parse requirement: ${term} (set-based selectors are not supported by this test server)`);
    }
  }
  return out;
}

function check(reqs: Requirement[], lookup: (key: string) => string | undefined): boolean {
  return reqs.every((r) => {
    const v = lookup(r.key);
    switch (r.op) {
      case '=':
        return v === r.value;
      case '!=':
        return v !== r.value;
      case 'exists':
        return v !== undefined;
      case '!exists':
        return v === undefined;
    }
  });
}

const FIELDS: Record<string, (o: KubeObjectLike) => string | undefined> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace,
  'status.phase': (o) => (o['status'] as { phase?: string } | undefined)?.phase,
  type: (o) => o['type'] as string | undefined,
};

/** Compiles `labelSelector` and `fieldSelector` query values into one matcher. */
export function compileSelectors(labelSelector: string | null, fieldSelector: string | null): Matcher {
  const labels = labelSelector === null ? [] : parse(labelSelector, true);
  const fields = fieldSelector === null ? [] : parse(fieldSelector, false);
  for (const f of fields) {
    if (FIELDS[f.key] === undefined) throw errors.badRequest(`"${f.key}" is not a known field selector: only "metadata.name", "metadata.namespace"`);
  }
  return (obj) => check(labels, (k) => obj.metadata.labels?.[k]) && check(fields, (k) => FIELDS[k]?.(obj));
}
