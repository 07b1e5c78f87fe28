// Runs network probes from inside another network namespace (`nsenter --net=... node
// probe-main.js '<specs json>' <timeoutMs>`): a prewarm's app listens in a private
// namespace, where warmstart's own process cannot connect. Exit 0 when ready, 1 if not.
import { LineBuffer } from "./output-lines.js";
import type { ProbeSpec } from "./probe-spec.js";
import { waitUntilReady } from "./wait-ready.js";

const [specsJson = "[]", timeoutText = "60000"] = process.argv.slice(2);
const probes = JSON.parse(specsJson) as ProbeSpec[];
const outcome = await waitUntilReady({ probes, timeoutMs: Number(timeoutText), output: new LineBuffer() });
process.exit(outcome.ready ? 0 : 1);
