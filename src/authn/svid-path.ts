/**
 * Finds a trusted path from an SVID leaf through the presented CA certificates to a current root.
 *
 * The path is found by names alone, and its signatures are then checked from the root down, so
 * the key that checks each signature is always one the trust bundle already vouches for: a root,
 * or a CA a root (or a CA under it) was seen to sign. Checked the other way up, the presented
 * certificates' own keys did the checking, and a chain of made-up CAs whose RSA public exponents
 * ran to 3,070 bits cost the CA 32 ms of CPU a request before it was refused (outside QA).
 */
import { signedBy, validAt, type SvidCert } from './svid-cert.js';

/** Why no path was trusted, in words for the logs. */
export class UntrustedPathError extends Error {}

/** A path that verified: the root it ends at and when the first certificate on it expires. */
export interface TrustedPath {
  readonly root: SvidCert;
  readonly pathNotAfter: number;
}

// Every ordering of four presented CAs that share one name is 64 paths; real chains have one.
const MAX_PATHS_TRIED = 16;
const NO_ROOT = 'chain does not lead to a root of the current trust bundle';

function span(cert: SvidCert): string {
  return `${new Date(cert.notBefore).toISOString()} .. ${new Date(cert.notAfter).toISOString()}`;
}

/** Why `ca` may not sign with `below` CA certificates between it and the leaf, or null. */
function caProblem(ca: SvidCert, below: number, what: string, now: number): string | null {
  if (!ca.isCa) return `a certificate in the chain is signed by a non-CA certificate (${what})`;
  if (!validAt(ca, now)) return `${what} is outside its validity (${span(ca)})`;
  if (ca.pathLen !== undefined && below > ca.pathLen) return `${what} pathLen ${ca.pathLen} forbids ${below} CA certificates below it`;
  return null;
}

/**
 * Every path by names from `leaf` up to one of `roots` through `presented` (each used at most
 * once), as the certificates above the leaf, nearest first; at most {@link MAX_PATHS_TRIED}.
 */
function namePaths(leaf: SvidCert, presented: readonly SvidCert[], roots: readonly SvidCert[], maxChain: number): SvidCert[][] {
  const paths: SvidCert[][] = [];
  const walk = (current: SvidCert, above: SvidCert[], unused: readonly SvidCert[]): void => {
    for (const root of roots) {
      if (paths.length >= MAX_PATHS_TRIED) return;
      if (current.issuer.equals(root.subject)) paths.push([...above, root]);
    }
    if (above.length >= maxChain) return;
    unused.forEach((ca, i) => {
      if (paths.length >= MAX_PATHS_TRIED || !current.issuer.equals(ca.subject)) return;
      walk(ca, [...above, ca], [...unused.slice(0, i), ...unused.slice(i + 1)]);
    });
  };
  walk(leaf, [], presented);
  return paths;
}

/**
 * The trusted path for `leaf`, or an {@link UntrustedPathError} naming what was wrong with the
 * most promising path: a CA that may not sign, a root out of its validity, or, when no path
 * verifies, that the chain does not lead to a root.
 */
export function trustedPath(leaf: SvidCert, presented: readonly SvidCert[], roots: readonly SvidCert[], now: number, maxChain: number): TrustedPath {
  // Several paths may share a link (one real intermediate under two roots of one name): each
  // signature is checked at most once.
  const checked = new Map<SvidCert, Map<SvidCert, boolean>>();
  const verifies = (child: SvidCert, parent: SvidCert): boolean => {
    let byParent = checked.get(child);
    if (byParent === undefined) checked.set(child, (byParent = new Map()));
    let ok = byParent.get(parent);
    if (ok === undefined) byParent.set(parent, (ok = signedBy(child, parent)));
    return ok;
  };
  let problem: string | null = null;
  for (const above of namePaths(leaf, presented, roots, maxChain)) {
    const root = above[above.length - 1] as SvidCert;
    // Shape first, which costs nothing: each CA's kind, validity and pathLen.
    let shape: string | null = null;
    for (let i = 0; i < above.length - 1 && shape === null; i++) shape = caProblem(above[i] as SvidCert, i, 'intermediate', now);
    shape ??= root.isCa ? null : caProblem(root, above.length - 1, 'root', now);
    if (shape !== null) {
      problem ??= shape;
      continue;
    }
    // Then signatures, from the root down.
    let signed = true;
    for (let i = above.length - 1; i >= 0 && signed; i--) signed = verifies(i === 0 ? leaf : (above[i - 1] as SvidCert), above[i] as SvidCert);
    if (!signed) continue;
    const rootProblem = caProblem(root, above.length - 1, 'root', now);
    if (rootProblem !== null) {
      problem ??= validAt(root, now) ? rootProblem : 'chain ends at a root outside its validity';
      continue;
    }
    const pathNotAfter = Math.min(leaf.notAfter, ...above.slice(0, -1).map((c) => c.notAfter));
    return { root, pathNotAfter };
  }
  throw new UntrustedPathError(problem ?? NO_ROOT);
}
