/**
 * In-process issuance per core (node:crypto limit, Rampart's issue path, @peculiar/x509) and
 * the Go anchor, measured in interleaved rounds: every round runs each case for its share of the
 * time, and each figure is the median over rounds. The targets are ratios between these
 * figures; on a shared machine whose speed drifts by tens of percent within a minute, figures
 * taken back to back in one block each would compare different machines.
 * Usage: node --import tsx bench/section-issuance.ts [--seconds 3] [--rounds 3] [--go-n 20000]
 * (--seconds and --go-n are per case in total, split over the rounds).
 */
import { buildGoAnchor, type GoAnchor } from './go-anchor.js';
import { inProcessCases } from './issuance-inprocess.js';
import { argNumber, emitResult, note } from './result-line.js';
import { median } from './stats.js';

const seconds = argNumber('seconds', 3);
const rounds = Math.max(1, Math.round(argNumber('rounds', 3)));
const goN = argNumber('go-n', 20_000);

const cases = await inProcessCases();
let go: GoAnchor | undefined;
let goNote: string;
try {
  const built = buildGoAnchor();
  if (typeof built === 'string') goNote = built;
  else {
    go = built;
    goNote = `go anchor -n ${Math.round(goN / rounds)} per round`;
  }
} catch (e) {
  goNote = `go anchor failed: ${(e as Error).message.slice(0, 300)}`;
}

const samples: Record<string, number[]> = {};
const record = (name: string, value: number): void => {
  (samples[name] ??= []).push(Math.round(value));
};
try {
  for (let round = 1; round <= rounds; round++) {
    note(`round ${round}/${rounds}`);
    for (const c of cases) record(c.name, await c.measure(seconds / rounds));
    if (go !== undefined) {
      try {
        record('goX509PerCore', go.run(1, Math.round(goN / rounds)));
        record('goX509TwoWorkers', go.run(2, Math.round(goN / rounds)));
        note(`go anchor: ${samples['goX509PerCore']!.at(-1)} /s one worker, ${samples['goX509TwoWorkers']!.at(-1)} /s two`);
      } catch (e) {
        goNote = `go anchor failed: ${(e as Error).message.slice(0, 300)}`;
        go.dispose();
        go = undefined;
        delete samples['goX509PerCore'];
        delete samples['goX509TwoWorkers'];
      }
    }
  }
} finally {
  go?.dispose();
}

const figure = (name: string): number | null => {
  const s = samples[name];
  return s === undefined || s.length === 0 ? null : Math.round(median(s));
};
/** Median over rounds of `a / b` taken in the same round (the medians above may come from different rounds). */
const perRound = (a: string, b: string): number | null => {
  const x = samples[a] ?? [];
  const y = samples[b] ?? [];
  const ratios = x.map((v, k) => (y[k] ? v / (y[k] as number) : NaN)).filter(Number.isFinite);
  return ratios.length === 0 ? null : Math.round(100 * median(ratios)) / 100;
};
emitResult({
  perRoundRatios: {
    inProcessOverGo: perRound('inProcessPerCore', 'goX509PerCore'),
    inProcessOverNative: perRound('inProcessPerCore', 'nativeLimitPerCore'),
    inProcessOverNaive: perRound('inProcessPerCore', 'peculiarNaivePerCore'),
  },
  nativeLimitPerCore: figure('nativeLimitPerCore'),
  nativeFreshKeyPerCore: figure('nativeFreshKeyPerCore'),
  inProcessPerCore: figure('inProcessPerCore'),
  peculiarNaivePerCore: figure('peculiarNaivePerCore'),
  goX509PerCore: figure('goX509PerCore'),
  goX509TwoWorkers: figure('goX509TwoWorkers'),
  goNote,
  rounds,
  samples,
});
