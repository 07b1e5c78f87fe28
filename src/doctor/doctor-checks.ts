import { accessSync, constants } from "node:fs";
import { release } from "node:os";
import { delimiter, join } from "node:path";
import { defaultCacheDir } from "../cache/cache-dir.js";
import {
  CRIU_INSTALL_FIX,
  findCriu,
  isCriuVersionTested,
  readRecordedCriuPath,
  TESTED_CRIU_TEXT,
} from "../criu/find-criu.js";
import { findKerndatCache, isKerndatCacheWanted } from "../criu/kerndat-cache.js";
import { criuCheck } from "../exec/command-lines.js";
import { findRestoreChain } from "../exec/restore-chain.js";
import {
  checkCapabilities,
  checkContainer,
  checkLsm,
  checkRestoreNamespace,
  checkSeccomp,
  readConfinement,
} from "./container-checks.js";
import { runFunctionalProbe } from "./functional-probe.js";

export type CheckStatus = "ok" | "missing" | "broken" | "info";

export interface DoctorCheck {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
  /** What to do when the status is not ok. */
  readonly fix?: string;
  /** A launch can be warm only when every required check is ok. */
  readonly isRequired: boolean;
}

export interface DoctorReport {
  readonly checks: readonly DoctorCheck[];
  readonly canBeWarm: boolean;
}

/** CRIU features warmstart relies on, as `criu check --feature` names them. */
const FEATURES: readonly { feature: string; why: string; isRequired: boolean; fix: string }[] = [
  {
    feature: "ns_pid",
    why: "PID namespaces: restores never need the old PID free",
    isRequired: true,
    fix: "use a kernel with CONFIG_PID_NS",
  },
  {
    feature: "clone3_set_tid",
    why: "clone3 with set_tid: restore a task with its old PID",
    isRequired: true,
    fix: "use Linux >= 5.5",
  },
  {
    feature: "pidfd_store",
    why: "pidfd store: safer PID reuse checks",
    isRequired: false,
    fix: "use Linux >= 5.4",
  },
  {
    feature: "uffd-noncoop",
    why: "userfaultfd: lazy restores",
    isRequired: false,
    fix: "enable CONFIG_USERFAULTFD",
  },
  {
    feature: "mem_dirty_track",
    why: "soft-dirty tracking: incremental dumps",
    isRequired: false,
    fix: "enable CONFIG_MEM_SOFT_DIRTY (optional)",
  },
];

const TOOLS: readonly { tool: string; why: string; isRequired: boolean; fix: string }[] = [
  { tool: "bash", why: "gives the app real stdio pipes", isRequired: true, fix: "apt-get install bash" },
  {
    tool: "unshare",
    why: "new PID + mount namespace for restores",
    isRequired: true,
    fix: "apt-get install util-linux",
  },
  {
    tool: "setpriv",
    why: "the app dies with warmstart",
    isRequired: true,
    fix: "apt-get install util-linux",
  },
  {
    tool: "perl",
    why: "reaps the restored app and reports its exit code",
    isRequired: true,
    fix: "apt-get install perl-base",
  },
  {
    tool: "python3",
    why: "the `notify` readiness probe (sd_notify socket)",
    isRequired: false,
    fix: "apt-get install python3",
  },
];

export async function runDoctor(env: NodeJS.ProcessEnv = process.env): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  checks.push({ name: "kernel", status: "info", detail: release(), isRequired: false });
  checks.push(checkContainer(env));
  const confinement = readConfinement();
  checks.push(checkCapabilities(confinement), checkSeccomp(confinement), checkLsm(confinement));
  checks.push(await checkRestoreNamespace());

  const criu = await findCriu(env);
  if (criu.found) {
    const { path, version } = criu.criu;
    const recorded = readRecordedCriuPath(env) === path ? ", installed by warmstart setup --prefix" : "";
    checks.push({
      name: "criu",
      status: "ok",
      detail: isCriuVersionTested(version)
        ? `${version.text} at ${path} (tested: ${TESTED_CRIU_TEXT}${recorded})`
        : `${version.text} at ${path} (not a version warmstart was tested with: ${TESTED_CRIU_TEXT}${recorded}; \`warmstart setup --force\` installs one)`,
      isRequired: true,
    });
  } else if (criu.reason === "missing") {
    checks.push({
      name: "criu",
      status: "missing",
      detail: "not found",
      fix: CRIU_INSTALL_FIX,
      isRequired: true,
    });
  } else {
    const version = criu.reason === "too-old" ? `${criu.version.text} ` : "";
    checks.push({
      name: "criu",
      status: "broken",
      detail: `${version}at ${criu.path}: warmstart needs CRIU >= 4.2 (3.17 fails on kernels with [vvar_vclock], 4.1 cannot dump TCP sockets on Linux >= 6.16)`,
      fix: CRIU_INSTALL_FIX,
      isRequired: true,
    });
  }
  for (const { tool, why, isRequired, fix } of TOOLS) {
    const path = findInPath(tool, env);
    checks.push(
      path
        ? { name: tool, status: "ok", detail: path, isRequired }
        : { name: tool, status: "missing", detail: why, fix, isRequired },
    );
  }
  checks.push(await checkInputRecording(env));
  checks.push(await checkInputStamps());
  checks.push(checkRestoreChain(findRestoreChain()));
  if (!criu.found) {
    checks.push(skippedProbe());
    return finish(checks);
  }
  const criuPath = criu.criu.path;
  const cacheDir = defaultCacheDir(env);
  checks.push(
    checkKerndatCache(cacheDir, {
      isCopyWanted: isKerndatCacheWanted(),
      copy: findKerndatCache(cacheDir, criuPath),
    }),
  );
  // execa is ESM only, and the CLI bundle is CommonJS (it starts faster): import() loads it.
  const { execa } = await import("execa");
  const [check, ...checkArgs] = criuCheck(criuPath);
  const kernelCheck = await execa(check, checkArgs, { reject: false, all: true, timeout: 30_000 });
  checks.push(
    kernelCheck.exitCode === 0
      ? { name: "criu check", status: "ok", detail: lastLine(kernelCheck.all), isRequired: true }
      : {
          name: "criu check",
          status: "broken",
          detail: firstErrorLine(kernelCheck.all),
          fix: "see `criu check` output; the kernel lacks something CRIU needs",
          isRequired: true,
        },
  );
  const features = await Promise.all(
    FEATURES.map(async ({ feature, why, isRequired, fix }): Promise<DoctorCheck> => {
      const [file, ...args] = criuCheck(criuPath, feature);
      const result = await execa(file, args, {
        reject: false,
        all: true,
        timeout: 30_000,
      });
      const isSupported = result.exitCode === 0 && /is supported/.test(result.all ?? "");
      return isSupported
        ? { name: `feature ${feature}`, status: "ok", detail: why, isRequired }
        : { name: `feature ${feature}`, status: "missing", detail: why, fix, isRequired };
    }),
  );
  checks.push(...features);
  if (checks.every((check) => !check.isRequired || check.status === "ok")) {
    checks.push(await runFunctionalProbe(env));
  } else {
    checks.push(skippedProbe());
  }
  return finish(checks);
}

function skippedProbe(): DoctorCheck {
  return {
    name: "checkpoint/restore probe",
    status: "missing",
    detail: "skipped: a required check above failed",
    fix: "fix the checks above first",
    isRequired: true,
  };
}

function finish(checks: DoctorCheck[]): DoctorReport {
  return { checks, canBeWarm: checks.every((check) => !check.isRequired || check.status === "ok") };
}

function findInPath(tool: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // Keep looking.
    }
  }
  return undefined;
}

function lastLine(text: string | undefined): string {
  return (text ?? "").trim().split("\n").at(-1) ?? "";
}

function firstErrorLine(text: string | undefined): string {
  const lines = (text ?? "").trim().split("\n");
  return lines.find((line) => /Error/.test(line)) ?? lines.at(-1) ?? "failed";
}

/** How a cold start finds the files a snapshot depends on (src/inputs/). */
async function checkInputRecording(env: NodeJS.ProcessEnv): Promise<DoctorCheck> {
  const { startRecorder } = await import("../inputs/recorder.js");
  const recorder = startRecorder(env);
  await recorder.opened;
  recorder.close();
  return recorder.mode === "fanotify"
    ? {
        name: "input recording",
        status: "ok",
        detail: "fanotify: every file the app's tree opens while it starts is an input of its snapshot",
        isRequired: false,
      }
    : {
        name: "input recording",
        status: "missing",
        detail: `/proc at dump time only (${recorder.fallbackReason}): files the app read and closed while it started are not seen, so an edit to them may restore old code`,
        fix: "run as root (fanotify needs CAP_SYS_ADMIN), or declare such files with --input",
        isRequired: false,
      };
}

/** How a warm launch checks a snapshot's inputs: one native call, or a statSync per input. */
async function checkInputStamps(): Promise<DoctorCheck> {
  const { describeNativeStampsUnavailable } = await import("../inputs/native-stamps.js");
  const unavailable = describeNativeStampsUnavailable();
  return unavailable
    ? {
        name: "input check",
        status: "info",
        detail: `one statSync per input from JavaScript (${unavailable}): slower on a warm launch of an app with many inputs`,
        fix: "install a C compiler (build-essential) and run `npm run build`",
        isRequired: false,
      }
    : {
        name: "input check",
        status: "ok",
        detail: "native: a warm launch stats its snapshot's inputs in one call",
        isRequired: false,
      };
}

/** How a restore reaches CRIU: the restore chain's program, or util-linux and perl. */
export function checkRestoreChain(program: string | undefined): DoctorCheck {
  return program
    ? {
        name: "restore chain",
        status: "ok",
        detail: `native (${program}): one exec sets up a restore's namespaces, and reaps the app after`,
        isRequired: false,
      }
    : {
        name: "restore chain",
        status: "info",
        detail:
          "setpriv, sh, unshare, sh, mount and a perl reaper (the native program was not built): five more execs on every restore, about 20 ms on a small 2-core VM",
        fix: "install a C compiler (build-essential) and run `npm run build`",
        isRequired: false,
      };
}

/**
 * Whether restores find CRIU's kernel-feature cache (src/criu/kerndat-cache.ts): without it
 * every restore probes the kernel again (~45 ms). Information, never a failure: a launch is
 * warm either way, and the first one that is ready makes the copy.
 */
export function checkKerndatCache(
  cacheDir: string,
  facts: { readonly isCopyWanted: boolean; readonly copy: string | undefined },
): DoctorCheck {
  const name = "criu's feature cache";
  if (!facts.isCopyWanted)
    return {
      name,
      status: "ok",
      detail: "/run is a tmpfs: CRIU keeps its own (/run/criu.kdat)",
      isRequired: false,
    };
  if (facts.copy)
    return {
      name,
      status: "ok",
      detail: `a copy for this boot and this CRIU at ${facts.copy}: restores skip CRIU's kernel probe (~45 ms)`,
      isRequired: false,
    };
  return {
    name,
    status: "info",
    detail: `no copy for this boot and this CRIU in ${cacheDir} yet: the first launch that is ready makes one; until then each restore probes the kernel (~45 ms)`,
    isRequired: false,
  };
}
