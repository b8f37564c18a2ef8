// pino.transport() as the agent bundle carries it: left out (scripts/bundle-agent.mjs). The agent
// writes its JSON log lines to stdout and never starts a transport, whose worker thread
// (thread-stream) would load node's worker_threads, module and url into every agent.
'use strict';
module.exports = function transport() {
  throw new Error('pino transports are left out of the agent bundle (scripts/bundle-agent.mjs): the agent logs JSON lines to stdout');
};
