import { summarizeCriuErrors } from "../criu/criu-log.js";
import type { CheckpointOutcome } from "../launch/checkpoint.js";
import { describeStep, type LaunchEvent } from "../launch/launch-events.js";
import type { WatchEvent } from "../launch/watch-inputs.js";
import { formatBytes } from "./format.js";

export interface RenderOptions {
  /** -v: every step, with its time since warmstart started. */
  readonly isVerbose: boolean;
  /** --quiet: no line for a launch that went as planned (ready, snapshot saved or skipped);
   * warnings and errors are still said. */
  readonly isQuiet: boolean;
}

/**
 * Turns the library's launch events into warmstart's stderr lines. By default a launch says
 * when it is ready (`warmstart: warm in 171 ms (snapshot 798132f4, 124 MiB)`) and what became
 * of its snapshot (`warmstart: snapshot saved in 330 ms, 124 MiB`).
 */
export function createLaunchRenderer(options: RenderOptions): (event: LaunchEvent) => void {
  const { isVerbose, isQuiet } = options;
  const say = (line: string) => process.stderr.write(`warmstart: ${line}\n`);
  const stamp = (atMs: number) => (isVerbose ? `[${atMs} ms] ` : "");
  return (event) => {
    switch (event.type) {
      case "fallback":
      case "warning":
        say(`warning: ${event.message}`);
        return;
      case "step":
        // "serving" is rendered by the ready event, which carries the mode and PID.
        if (isVerbose && event.step !== "serving") {
          const detail = event.detail ? ` (${event.detail})` : "";
          say(`${stamp(event.atMs)}${describeStep(event.step)}${detail}`);
        }
        return;
      case "ready":
        if (isVerbose) say(`${stamp(event.readyMs)}ready, ${event.mode}, pid ${event.pid}`);
        else if (!isQuiet) say(describeReady(event));
        return;
      case "checkpoint": {
        const line = describeCheckpoint(event.outcome);
        if (line.isWarning) say(`warning: ${line.text}`);
        else if (!isQuiet) say(`${stamp(event.atMs)}${line.text}`);
        return;
      }
    }
  };
}

function describeReady(event: Extract<LaunchEvent, { type: "ready" }>): string {
  if (event.mode === "cold") return `cold in ${event.readyMs} ms`;
  const size = event.imageBytes === null ? "" : `, ${formatBytes(event.imageBytes)}`;
  return `warm in ${event.readyMs} ms (snapshot ${event.key?.slice(0, 8) ?? "?"}${size})`;
}

function describeCheckpoint(outcome: CheckpointOutcome): { text: string; isWarning: boolean } {
  if (outcome.saved) {
    const size = formatBytes(outcome.entry.manifest.imageBytes);
    return { text: `snapshot saved in ${outcome.checkpointMs} ms, ${size}`, isWarning: false };
  }
  switch (outcome.reason) {
    case "lost-race":
      return { text: `snapshot skipped: ${outcome.holder} is taking it`, isWarning: false };
    case "abandoned":
      return { text: "snapshot abandoned: warmstart was stopped while it was taken", isWarning: false };
    case "hook-failed":
      return {
        text: `no snapshot taken, the app keeps serving: ${outcome.errors.join("; ")}`,
        isWarning: true,
      };
    default: {
      const where = outcome.logPath ? ` (CRIU log: ${outcome.logPath})` : "";
      const why = outcome.explanation
        ? `${outcome.explanation} (CRIU: ${summarizeCriuErrors(outcome.errors)})`
        : summarizeCriuErrors(outcome.errors);
      return {
        text: `snapshot failed, the next launch will be cold too: ${why}${where}`,
        isWarning: true,
      };
    }
  }
}

export function renderWatchEvent(event: WatchEvent): void {
  switch (event.type) {
    case "input-changed":
      process.stderr.write(
        `warmstart: ${event.path} changed: ${event.isEvicted ? "the snapshot is stale and was removed" : "the next launch will be cold"}\n`,
      );
      return;
    case "prewarmed": {
      const { outcome } = event;
      if (outcome?.saved) {
        process.stderr.write(
          `warmstart: prewarmed the new version (${outcome.checkpointMs} ms): the next launch is warm\n`,
        );
      } else {
        const why = !outcome
          ? ""
          : outcome.reason === "lost-race"
            ? ": another launch is snapshotting it"
            : outcome.reason === "abandoned"
              ? ": it was stopped"
              : `: ${summarizeCriuErrors(outcome.errors)}`;
        process.stderr.write(
          `warmstart: warning: prewarm took no snapshot${why}; the next launch will be cold\n`,
        );
      }
      return;
    }
    case "prewarm-failed":
      process.stderr.write(`warmstart: warning: prewarm failed: ${event.message.split("\n")[0]}\n`);
      return;
    case "watch-error":
      process.stderr.write(`warmstart: warning: watching the inputs failed: ${event.message}\n`);
      return;
  }
}
