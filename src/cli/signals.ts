/** The signals by which Ctrl-C, systemd and Kubernetes ask a process to stop. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

export interface ShutdownSignalOptions {
  /** The signals to wait for (default SIGINT and SIGTERM). */
  readonly signals?: readonly NodeJS.Signals[];
  /** Called for a second such signal (to stop at once, say); without it that one takes the signal's default action. */
  readonly onRepeat?: (signal: NodeJS.Signals) => void;
}

/** Resolves with the first stop signal, so commands can shut down cleanly. */
export function waitForShutdownSignal(options: ShutdownSignalOptions = {}): Promise<NodeJS.Signals> {
  const signals = options.signals ?? STOP_SIGNALS;
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals): void => {
      for (const s of signals) process.off(s, first);
      if (options.onRepeat !== undefined) for (const s of signals) process.on(s, options.onRepeat);
      resolve(signal);
    };
    for (const s of signals) process.on(s, first);
  });
}
