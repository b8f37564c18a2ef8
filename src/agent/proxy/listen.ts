/** Binds a proxy listener, turning a bind failure into a rejection instead of a crash. */
import type { AddressInfo, Server } from 'node:net';

export function listenOn(server: Server, listen: { readonly host: string; readonly port: number }): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
