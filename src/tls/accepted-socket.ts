/**
 * The accepted TCP socket under a server-side TLS socket. Node's TLS server keeps it as the TLS
 * socket's `_parent`, an internal it has set since its first versions but does not type; the
 * events say less ('connection' gives the TCP socket, 'secureConnection' and 'tlsClientError'
 * the TLS one), and the TLS socket forgets its address once closed. Null where node gives no link:
 * every caller then does without, as it would on a node that dropped it.
 */
import { Socket } from 'node:net';

export function acceptedSocketOf(tlsSocket: Socket): Socket | null {
  const parent = (tlsSocket as Socket & { _parent?: unknown })._parent;
  return parent instanceof Socket ? parent : null;
}
