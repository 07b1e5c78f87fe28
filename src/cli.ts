#!/usr/bin/env node
// The CLI dispatches to a command module, and turns errors into messages and exit codes.
// Commands parse their flags, call the library and print; the library never prints.
import { readFileSync } from "node:fs";
import { suggestClosest } from "./commands/suggest.js";
import { WarmstartError } from "./errors.js";
import { becomeInitIfPid1 } from "./exec/pid1.js";

const USAGE = `Usage: warmstart <command> [options]

Commands:
  run [options] -- <command> [args...]      launch an app: restore its snapshot, or start it
                                            cold and snapshot it once it is ready
  serve --listen <[host:]port> [options] -- <command> [args...]
                                            hold the app's port, restore it on the first
                                            connection, stop it when idle (scale to zero)
  prewarm [options] -- <command> [args...]  snapshot an app without serving it (beside a
                                            running instance), so its next launch is warm
  bench [options] -- <command> [args...]    measure the app's time to first response, cold
                                            against warm, over --runs launches (default 5)
  setup [--prefix <dir>] [--criu-source <file>]
                                            build and install the tested CRIU (needs root)
  doctor [--json] [--pid <pid>]             check CRIU and the kernel features warmstart uses;
                                            with --pid, what a checkpoint of that process
                                            cannot carry
  ls [--json]                               list the snapshots: size, age, last use, hits, timings
  rm <key-prefix>... | --all                remove snapshots
  prune [--max-cache-size <size>]           remove abandoned dumps, refused and damaged entries,
                                            and the least recently used over the cap (500M, 10G)
  verify [<prefix>] [--fix] [--json]        re-hash every image file; --fix removes bad entries
  export <key-prefix> [-o <file>|-]         write a snapshot as one signed archive (tar + zstd)
  import <file|->                           read an archive into the cache, refusing unsafe ones
  push <key-prefix> --remote oci://<r>/<repo>  send a snapshot to an OCI registry
  pull <app-key|tag> --remote oci://<r>/<repo> fetch a compatible snapshot from the registry
  keygen [-o <file>] [--age]                make an Ed25519 signing key (or an age identity)
  help [command]                            show help for a command

The cache commands take --cache-dir <dir> as run does.`;

const COMMANDS = [
  "run",
  "serve",
  "prewarm",
  "bench",
  "setup",
  "doctor",
  "ls",
  "rm",
  "prune",
  "verify",
  "export",
  "import",
  "push",
  "pull",
  "keygen",
  "help",
];

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "run" || command === "prewarm" || command === "serve") runUnderInitIfPid1();
  switch (command) {
    case "run":
      return (await import("./commands/run.js")).runRunCommand(rest);
    case "serve":
      return (await import("./commands/serve.js")).runServeCommand(rest);
    case "prewarm":
      return (await import("./commands/run.js")).runPrewarmCommand(rest);
    case "bench":
      return (await import("./commands/bench.js")).runBenchCommand(rest);
    case "setup":
      return (await import("./commands/setup.js")).runSetupCommand(rest);
    case "doctor":
      return (await import("./doctor/doctor-command.js")).runDoctorCommand(rest);
    case "ls":
      return (await import("./commands/ls.js")).runLsCommand(rest);
    case "rm":
      return (await import("./commands/rm.js")).runRmCommand(rest);
    case "prune":
      return (await import("./commands/prune.js")).runPruneCommand(rest);
    case "verify":
      return (await import("./commands/verify.js")).runVerifyCommand(rest);
    case "export":
      return (await import("./commands/export.js")).runExportCommand(rest);
    case "import":
      return (await import("./commands/import.js")).runImportCommand(rest);
    case "push":
      return (await import("./commands/push.js")).runPushCommand(rest);
    case "pull":
      return (await import("./commands/pull.js")).runPullCommand(rest);
    case "keygen":
      return (await import("./commands/keygen.js")).runKeygenCommand(rest);
    case "help":
    case "--help":
    case "-h": {
      // Every command prints its own usage for --help.
      const [topic] = rest;
      if (topic === undefined || topic === "help") return printUsage();
      if (!COMMANDS.includes(topic)) throw unknownCommand(topic);
      return main([topic, "--help"]);
    }
    case "--version":
    case "-V": {
      const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
        version: string;
      };
      process.stdout.write(`${pkg.version}\n`);
      return 0;
    }
    case undefined:
      process.stderr.write(`${USAGE}\n`);
      return 2;
    default:
      throw unknownCommand(command);
  }
}

function unknownCommand(command: string): WarmstartError {
  const nearest = suggestClosest(command, COMMANDS, 2);
  const didYouMean = nearest ? ` (did you mean ${nearest}?)` : "";
  return new WarmstartError("invalid-option", `Unknown command ${JSON.stringify(command)}${didYouMean}.`, {
    hint: `commands: ${COMMANDS.join(", ")}`,
  });
}

/** As PID 1 (a container's entrypoint), warmstart runs under a small init that reaps orphans. */
function runUnderInitIfPid1(): void {
  const problem = becomeInitIfPid1();
  if (problem) process.stderr.write(`warmstart: warning: ${problem}\n`);
  // The init's mark is warmstart's business, not the app's.
  delete process.env.WARMSTART_UNDER_INIT;
}

function printUsage(): number {
  process.stdout.write(`${USAGE}\n`);
  return 0;
}

/** An app that died before it was ready exits warmstart with its own code, as it would alone. */
function exitCodeFor(error: WarmstartError): number {
  const appExitCode = error.details.exitCode;
  if ((error.code === "app-exited" || error.code === "aborted") && typeof appExitCode === "number")
    return appExitCode;
  return error.code === "invalid-option" || error.code === "invalid-config" ? 2 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof WarmstartError) {
      process.stderr.write(`warmstart: error: ${error.message}\n`);
      process.exit(exitCodeFor(error));
    }
    process.stderr.write(
      `warmstart: internal error: ${error instanceof Error ? error.stack : String(error)}\n`,
    );
    process.exit(70);
  },
);
