export { createNotifyListener, type NotifyListener, type NotifyListenerOptions } from "./notify.js";
export { LineBuffer, type LineBufferOptions, type OutputLines } from "./output-lines.js";
export { describeProbe, type ProbeSpec, parseProbe } from "./probe-spec.js";
export {
  describePendingProbes,
  type ReadyOutcome,
  type WaitReadyOptions,
  waitUntilReady,
} from "./wait-ready.js";
