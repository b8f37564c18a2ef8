/** Binds a proxy listener, turning a bind failure into a rejection instead of a crash. */
import type { AddressInfo, Server } from 'node:net';

// An application opening connections in a burst must queue in the kernel, not have its
// handshakes dropped: node's default of 511 left part of a 3,000-connection burst waiting on
// TCP retransmits (seconds each).
const LISTEN_BACKLOG = 4096;

export function listenOn(server: Server, listen: { readonly host: string; readonly port: number }): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: listen.port, host: listen.host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
