/**
 * In-process issuance per core (node:crypto limit, Rampart's issue path, @peculiar/x509) and
 * the Go anchor. Usage: node --import tsx bench/section-issuance.ts [--seconds 3] [--go-n 20000]
 */
import { benchInProcess } from './issuance-inprocess.js';
import { runGoAnchor } from './go-anchor.js';
import { argNumber, emitResult, note } from './result-line.js';

const seconds = argNumber('seconds', 3);
const inProcess = await benchInProcess(seconds);
let go;
try {
  go = runGoAnchor(argNumber('go-n', 20_000));
} catch (e) {
  go = { perCore: null, twoWorkers: null, note: `go anchor failed: ${(e as Error).message.slice(0, 300)}` };
}
note(`go anchor: ${JSON.stringify(go)}`);
emitResult({
  nativeLimitPerCore: Math.round(inProcess.nativeLimitPerCore),
  nativeFreshKeyPerCore: Math.round(inProcess.nativeFreshKeyPerCore),
  inProcessPerCore: Math.round(inProcess.inProcessPerCore),
  peculiarNaivePerCore: Math.round(inProcess.peculiarNaivePerCore),
  goX509PerCore: go.perCore,
  goX509TwoWorkers: go.twoWorkers,
  goNote: go.note,
});
