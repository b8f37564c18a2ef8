/**
 * `Expect: 100-continue` as RFC 9110 section 10.1.1 means it: the client waits (curl for 1 s)
 * before uploading, so a request that will be refused (404, 405, 413, 415, a shutdown) is
 * answered without its body ever being sent. Node writes "100 Continue" itself before any
 * routing, so a client uploading 2 MB to a wrong path sent all of it to read a 404. Here the
 * servers route first and `sendContinue` is called only where a body is about to be read; a
 * final answer given without it makes node close the connection, since the client may or may
 * not send the body after all (and the lingering close then takes what it does send).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { answerUnmetExpectation } from './framing-errors.js';

/** The members of an Expect value, lower-cased, empty list elements dropped (RFC 9110 section 5.6.1). */
function expectations(req: IncomingMessage): string[] {
  return (req.headers.expect ?? '')
    .split(',')
    .map((member) => member.trim().toLowerCase())
    .filter((member) => member !== '');
}

/**
 * Installs the Expect handling on a node:http or node:https server:
 * - only `100-continue`: the request is routed, and "100 Continue" goes out when something
 *   starts reading its body (a stream's 'resume'), never for a request answered without it;
 * - nothing but empty list elements (`Expect:`): there is no expectation, the request is routed;
 * - any other member, alone or next to `100-continue`: a coded 417 (node matched 100-continue
 *   anywhere in the value and ignored the rest).
 */
export function deferContinue(server: Server): void {
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const members = expectations(req);
    if (!members.every((member) => member === '100-continue')) {
      answerUnmetExpectation(req, res);
      return;
    }
    if (members.length > 0) req.once('resume', () => sendContinue(res));
    server.emit('request', req, res);
  };
  server.on('checkContinue', route);
  server.on('checkExpectation', route);
}

function sendContinue(res: ServerResponse): void {
  // Once a final answer has begun, the interim one has no place (node then closes the
  // connection: the client may or may not send the body).
  if (res.headersSent || res.writableEnded) return;
  res.writeContinue();
}
