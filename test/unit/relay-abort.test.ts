/**
 * abortSocket on a socket whose write side already ended: node 20 leaked the handle when libuv
 * refused the reset (EINVAL while a shutdown is pending). The fd stayed open, the socket never
 * emitted 'close', and the process could not exit. Run in a child, which the test kills should it
 * hang (the old behaviour).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const relayModule = fileURLToPath(new URL('../../src/agent/proxy/relay.ts', import.meta.url));

const CHECK = `
import net from 'node:net';
const { abortSocket } = await import(${JSON.stringify(relayModule)});
const errors = [];
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  socket.on('error', (err) => errors.push(err.syscall + ' ' + err.code));
  socket.on('close', () => server.close(() => console.log(JSON.stringify({ closed: true, errors, serverConnections: server._connections }))));
  socket.end('bye');
  // Right after node's _final asked libuv to shut the handle down, before the loop completed it:
  // the moment the relay passes an end on and then aborts (the old code's reset got EINVAL).
  process.nextTick(() => process.nextTick(() => abortSocket(socket)));
});
server.listen(0, '127.0.0.1', () => {
  const client = net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => {});
  client.pause();
  client.on('close', () => {});
  server.on('close', () => client.destroy());
});
`;

test('aborting a socket whose write side has ended closes its handle, with no error, so the process can exit (outside QA: a stuck connection spun at 100 % CPU after SIGTERM)', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHECK], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  // Liveness, not timing: the check takes milliseconds; only a leaked handle gets near this.
  const hung = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(hung);
  assert.equal(signal, null, `the socket never closed (its handle leaked); it printed: ${stdout}`);
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), { closed: true, errors: [], serverConnections: 0 });
});
