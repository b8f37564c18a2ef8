/** `rampart demo`: a whole mesh on loopback; prints what happened and exits 0. */
import { DemoInterrupted, runDemoScenario } from '../../demo/run-demo.js';
import { parseDuration } from '../../core/clock.js';
import { parseFlags, UsageError, type FlagSpec } from '../args.js';
import { waitForShutdownSignal } from '../signals.js';

export const DEMO_HELP = `Usage: rampart demo [flags]

Starts, all on 127.0.0.1 with ports the system picks: a CA on a temporary state directory
(leaf certificates live 8 s so a renewal happens while you watch), a "backend" and a
"frontend" HTTP service each behind its own agent, and an "intruder" with its own agent.
Shows frontend -> backend allowed over mutual TLS (with the caller's SPIFFE ID from the
backend agent's log), the intruder refused, the frontend's certificate renewed (serial
before/after), prints a summary and exits 0 (1 if something did not happen as expected).

Flags:
  --keep-running   leave the mesh up and print the ports to try with curl, until Ctrl-C
  --verbose        also print every component's JSON log lines on stderr
  --keep-logs      keep the log files (ca.log, agent-<name>.log) when the demo ends
  --leaf-ttl D     certificate lifetime the CA grants (default 8s; at least 2s)
`;

const SPEC: FlagSpec = {
  'keep-running': { type: 'boolean' },
  verbose: { type: 'boolean' },
  'keep-logs': { type: 'boolean' },
  'leaf-ttl': { type: 'string' },
};

interface DemoFlags {
  help?: boolean;
  'keep-running'?: boolean;
  verbose?: boolean;
  'keep-logs'?: boolean;
  'leaf-ttl'?: string;
}

// The demo's CA grants from 2 s (so a renewal shows within seconds) up to the usual 24 h.
function demoLeafTtl(text: string): string {
  const ms = parseDuration(text);
  if (ms === null || ms < 2000 || ms > 86_400_000) throw new UsageError(`--leaf-ttl "${text}" must be a duration from 2s to 24h, e.g. 8s`);
  return text;
}

/** Runs the demo; returns the exit code. */
export async function runDemo(argv: readonly string[]): Promise<number> {
  const { values } = parseFlags<DemoFlags>(argv, SPEC);
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  // Ctrl-C during start-up or the narrative must still clean up: the scenario stops the mesh
  // in its finally; a second signal leaves at once.
  const interrupt = new AbortController();
  const signal = waitForShutdownSignal().then((s) => {
    interrupt.abort();
    // Cleanup takes a moment (the mesh stops, the directory with keys goes): further Ctrl-Cs
    // must not cut it short and leave key material behind.
    for (const again of ['SIGINT', 'SIGTERM'] as const) process.on(again, () => undefined);
    return s;
  });
  const leafTtl = values['leaf-ttl'] ? demoLeafTtl(values['leaf-ttl']) : undefined;
  try {
    const summary = await runDemoScenario({
      out: process.stdout,
      logMirror: values.verbose ? process.stderr : null,
      keepLogs: values['keep-logs'] === true,
      ...(leafTtl ? { leafTtl } : {}),
      // With --keep-running, Ctrl-C is what ends the hold; otherwise it interrupts the narrative.
      ...(values['keep-running'] ? { holdOpen: () => signal } : { interrupt: interrupt.signal }),
    });
    return summary.ok ? 0 : 1;
  } catch (err) {
    if (err instanceof DemoInterrupted) return 130;
    throw err;
  }
}
