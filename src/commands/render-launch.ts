import { summarizeCriuErrors } from "../criu/criu-log.js";
import type { CheckpointOutcome } from "../launch/checkpoint.js";
import { describeStep, type LaunchEvent } from "../launch/launch-events.js";
import type { WatchEvent } from "../launch/watch-inputs.js";

/** Turns the library's launch events into warmstart's stderr lines. */
export function createLaunchRenderer(isVerbose: boolean): (event: LaunchEvent) => void {
  return (event) => {
    switch (event.type) {
      case "fallback":
      case "warning":
        process.stderr.write(`warmstart: warning: ${event.message}\n`);
        return;
      case "step":
        // "serving" is rendered by the ready event, which carries the mode and PID.
        if (isVerbose && event.step !== "serving") {
          const detail = event.detail ? ` (${event.detail})` : "";
          process.stderr.write(`warmstart: [${event.atMs} ms] ${describeStep(event.step)}${detail}\n`);
        }
        return;
      case "ready":
        if (isVerbose)
          process.stderr.write(`warmstart: [${event.readyMs} ms] ready, ${event.mode}, pid ${event.pid}\n`);
        return;
      case "checkpoint":
        renderCheckpoint(event.outcome, isVerbose);
        return;
    }
  };
}

function renderCheckpoint(outcome: CheckpointOutcome, isVerbose: boolean): void {
  if (outcome.saved) {
    if (isVerbose) {
      const mb = (outcome.entry.manifest.imageBytes / 1e6).toFixed(1);
      process.stderr.write(`warmstart: checkpoint saved in ${outcome.checkpointMs} ms (${mb} MB)\n`);
    }
    return;
  }
  switch (outcome.reason) {
    case "lost-race":
      if (isVerbose)
        process.stderr.write(`warmstart: no checkpoint: ${outcome.holder} is taking this snapshot\n`);
      return;
    case "abandoned":
      process.stderr.write("warmstart: checkpoint abandoned: warmstart was stopped while it was taken\n");
      return;
    case "hook-failed":
      process.stderr.write(
        `warmstart: warning: no snapshot taken, the app keeps serving: ${outcome.errors.join("; ")}\n`,
      );
      return;
    default: {
      const where = outcome.logPath ? ` (CRIU log: ${outcome.logPath})` : "";
      process.stderr.write(
        `warmstart: warning: checkpoint failed, the next launch will be cold too: ${summarizeCriuErrors(outcome.errors)}${where}\n`,
      );
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
