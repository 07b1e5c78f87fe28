import { TESTED_CRIU_TEXT } from "../criu/find-criu.js";
import { parseCommandArgs, rejectPositionals } from "./command-args.js";

export const SETUP_USAGE = `Usage: warmstart setup [--prefix <dir>] [--criu-source <file>] [--force] [--allow-untested]

Makes a working CRIU available to warmstart, as root, on Debian 12 or 13: builds CRIU
${TESTED_CRIU_TEXT} (the series warmstart is tested with) from the source package of the Debian
archive this machine's apt uses, with its build dependencies, and installs <prefix>/sbin/criu.
Does nothing when the CRIU warmstart finds already works (a real dump of a TCP listener).

  --prefix <dir>          install into <dir>/sbin (default /usr/local); warmstart records
                          where, and later launches use that criu first
  --criu-source <file>    build this CRIU source tarball instead (when the archive no longer
                          carries ${TESTED_CRIU_TEXT}: criu.org lists the releases)
  --allow-untested        build a release newer than ${TESTED_CRIU_TEXT} if that is what the source has
  --force                 build and install even if a working CRIU is there

A build is kept per source tarball in $XDG_CACHE_HOME/warmstart-setup (~/.cache/...): the
same source is not compiled twice.`;

/** `warmstart setup`: the library installs, this prints its progress and the outcome. */
export async function runSetupCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(
    args,
    {
      prefix: { type: "string" },
      "criu-source": { type: "string" },
      "allow-untested": { type: "boolean", default: false },
      force: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    SETUP_USAGE,
  );
  if (values.help) {
    process.stdout.write(`${SETUP_USAGE}\n`);
    return 0;
  }
  rejectPositionals(positionals, SETUP_USAGE);
  const { installCriu } = await import("../setup/install-criu.js");
  const outcome = await installCriu({
    ...(values.prefix !== undefined ? { prefix: values.prefix } : {}),
    ...(values["criu-source"] !== undefined ? { criuSource: values["criu-source"] } : {}),
    isForced: values.force === true,
    isUntestedAllowed: values["allow-untested"] === true,
    onProgress: (message) => process.stderr.write(`warmstart setup: ${message}\n`),
  });
  const tested = outcome.isTested
    ? `tested with warmstart (${TESTED_CRIU_TEXT})`
    : `not a version warmstart was tested with (${TESTED_CRIU_TEXT})`;
  if (!outcome.isInstalled) {
    process.stdout.write(
      `CRIU ${outcome.version.text} at ${outcome.criuPath} works; nothing to do (${tested}${outcome.isTested ? "" : "; --force installs the tested series"}).\n`,
    );
    return 0;
  }
  const where = outcome.recordPath ? `; recorded in ${outcome.recordPath}, warmstart uses it first` : "";
  process.stdout.write(
    `Installed CRIU ${outcome.version.text} at ${outcome.criuPath} (${tested})${where}.\n`,
  );
  return 0;
}
