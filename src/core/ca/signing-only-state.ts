/**
 * The CA state a signing worker receives. A worker signs leaves with the active intermediate and
 * serves the bundle; every admin step that needs a root key goes to the primary, the single
 * writer. So the root keys, and the keys of intermediates that are not signing, stay in the
 * primary: a worker compromised through its request handling cannot mint an intermediate, nor
 * sign with a prepared root's intermediate (trusted from the moment it joins the bundle).
 */
import type { CaState, RootRecord } from '../ports.js';

export function signingOnlyState(state: CaState): CaState {
  return { ...state, roots: state.roots.map(withoutSpareKeys) };
}

function withoutSpareKeys(root: RootRecord): RootRecord {
  // An empty intermediate key for a root that is not active: signingContextFor loads only the
  // active one's, and a worker writes no state that could carry the blank back.
  const intermediate = root.phase === 'active' ? root.intermediate : { ...root.intermediate, keyPem: '' };
  return { ...root, keyPem: null, intermediate };
}
