/** A loopback TCP port that was free a moment ago, for a child process that needs a fixed one. */
import { createServer, type AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A loopback port held by a listener that drops every connection, for tests of a port in use. */
export async function holdPort(): Promise<{ port: number; release: () => void }> {
  const srv = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return { port: (srv.address() as AddressInfo).port, release: () => srv.close() };
}
