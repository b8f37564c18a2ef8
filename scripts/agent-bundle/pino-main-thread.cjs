// What pino's lib/tools.js reads from worker_threads, as the agent bundle carries it
// (scripts/bundle-agent.mjs): only isMainThread, to decide whether an asynchronous log stream is
// flushed when the process exits. The bundle runs only as a process's main script
// (bin/rampart-agent.cjs, bench/proxies/rampart.sh), never inside a worker, so it is the main
// thread; loading worker_threads to learn that costs each agent about 370 KiB of memory.
'use strict';
module.exports = { isMainThread: true };
