import { existsSync, readFileSync } from "node:fs";
import { inRestoreNamespace } from "../exec/command-lines.js";
import { describeExit, runToCompletion } from "../exec/owned-process.js";
import { findRestoreChain } from "../exec/restore-chain.js";
import type { DoctorCheck } from "./doctor-checks.js";

// What a container (or any confined process) may withhold from CRIU: capabilities, a
// seccomp filter, an AppArmor profile. Read from /proc/self, so it holds for warmstart and
// for the CRIU it runs (children inherit all three).

/**
 * The capabilities warmstart's dump and restore need, each found by dropping it alone from
 * the bounding set and running doctor's checkpoint/restore probe (CRIU 4.2.1, Linux 6.18,
 * root): without it, what failed. Every other capability could be dropped with the probe
 * still passing (CAP_SYS_PTRACE and CAP_CHECKPOINT_RESTORE included: root's CAP_SYS_ADMIN
 * covers what they guard for an app of the same user).
 */
export const REQUIRED_CAPABILITIES: readonly { name: string; bit: number; without: string }[] = [
  { name: "CAP_SYS_ADMIN", bit: 21, without: "criu dump fails" },
  { name: "CAP_NET_ADMIN", bit: 12, without: "restores fail (netlink: Operation not permitted)" },
  { name: "CAP_SYS_CHROOT", bit: 18, without: "restores fail (Can't change root)" },
  { name: "CAP_SYS_TIME", bit: 25, without: "restores fail (Unable to set a monotonic clock offset)" },
  { name: "CAP_SETPCAP", bit: 8, without: "restores hang" },
];

/** Docker's default set already has CAP_SYS_CHROOT and CAP_SETPCAP; the others need --cap-add. */
const DOCKER_FLAG = (names: readonly string[]) =>
  names.map((name) => `--cap-add ${name.replace(/^CAP_/, "")}`).join(" ");

export interface ProcessConfinement {
  readonly effectiveCaps: bigint;
  readonly boundingCaps: bigint;
  /** 0 none, 1 strict, 2 filter. */
  readonly seccompMode: number;
  readonly seccompFilters: number;
  readonly isNoNewPrivs: boolean;
  /** The AppArmor (or other LSM) label, "unconfined" or undefined when there is none. */
  readonly lsmLabel: string | undefined;
}

export function readConfinement(
  status = readFileSync("/proc/self/status", "utf8"),
  lsmLabel = readLsmLabel(),
): ProcessConfinement {
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)$`, "m").exec(status)?.[1];
  return {
    effectiveCaps: BigInt(`0x${field("CapEff") ?? "0"}`),
    boundingCaps: BigInt(`0x${field("CapBnd") ?? "0"}`),
    seccompMode: Number(field("Seccomp") ?? 0),
    seccompFilters: Number(field("Seccomp_filters") ?? 0),
    isNoNewPrivs: field("NoNewPrivs") === "1",
    lsmLabel,
  };
}

function readLsmLabel(): string | undefined {
  try {
    const label = readFileSync("/proc/self/attr/current", "utf8").replace(/\0/g, "").trim();
    return label === "" ? undefined : label;
  } catch {
    return undefined;
  }
}

/** Why we think this is a container, or undefined. Informational: the checks below decide. */
export function detectContainer(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (existsSync("/.dockerenv")) return "Docker (/.dockerenv)";
  if (existsSync("/run/.containerenv")) return "Podman (/run/.containerenv)";
  if (env.KUBERNETES_SERVICE_HOST) return "Kubernetes ($KUBERNETES_SERVICE_HOST)";
  if (env.container) return `${env.container} ($container)`;
  return undefined;
}

export function checkContainer(env: NodeJS.ProcessEnv = process.env): DoctorCheck {
  const container = detectContainer(env);
  return {
    name: "container",
    status: "info",
    detail: container ? `yes: ${container}` : "none detected",
    isRequired: false,
  };
}

export function checkCapabilities(confinement: ProcessConfinement): DoctorCheck {
  const missing = REQUIRED_CAPABILITIES.filter(
    ({ bit }) => (confinement.effectiveCaps & (1n << BigInt(bit))) === 0n,
  );
  const who = process.getuid?.() === 0 ? "root" : `uid ${process.getuid?.()}`;
  if (missing.length === 0) {
    return {
      name: "capabilities",
      status: "ok",
      detail: `${who} with ${REQUIRED_CAPABILITIES.map(({ name }) => name).join(", ")}`,
      isRequired: true,
    };
  }
  const notGrantable = missing.filter(({ bit }) => (confinement.boundingCaps & (1n << BigInt(bit))) === 0n);
  const names = missing.map(({ name }) => name);
  return {
    name: "capabilities",
    status: "missing",
    detail: `${who} lacks ${missing.map(({ name, without }) => `${name} (${without})`).join(", ")}`,
    fix:
      notGrantable.length > 0
        ? `the container or service withholds them (not in the bounding set): e.g. docker run ${DOCKER_FLAG(names)}, or run warmstart as root outside it`
        : `run warmstart as root, or grant ${names.join(", ")}`,
    isRequired: true,
  };
}

/**
 * Measured here: under any seccomp filter, even one that allows every call, `criu dump`
 * fails. The app inherits warmstart's filter, and CRIU must suspend it to inject its
 * parasite (PTRACE_O_SUSPEND_SECCOMP), which the kernel refuses to a tracer that is under a
 * filter itself ("suspending seccomp failed: Operation not permitted").
 */
export function checkSeccomp(confinement: ProcessConfinement): DoctorCheck {
  if (confinement.seccompMode === 0) {
    return { name: "seccomp", status: "ok", detail: "no filter", isRequired: true };
  }
  const what =
    confinement.seccompMode === 1
      ? "strict mode"
      : `${confinement.seccompFilters} filter${confinement.seccompFilters === 1 ? "" : "s"} active`;
  return {
    name: "seccomp",
    status: "broken",
    detail: `${what}: the app inherits it, and CRIU cannot dump a process under a filter while itself under one (suspending seccomp failed: Operation not permitted)`,
    fix: "run warmstart without a seccomp filter: --security-opt seccomp=unconfined (Docker, Podman), SystemCallFilter= unset (systemd)",
    isRequired: true,
  };
}

export function checkLsm(confinement: ProcessConfinement): DoctorCheck {
  const label = confinement.lsmLabel;
  if (label === undefined || label === "unconfined" || label.endsWith("(unconfined)")) {
    return { name: "apparmor", status: "ok", detail: label ?? "no profile", isRequired: false };
  }
  return {
    name: "apparmor",
    status: "missing",
    detail: `profile ${label}: Docker's default profile denies mount, which restores need (a new /proc in their PID namespace)`,
    fix: "run the container with --security-opt apparmor=unconfined",
    isRequired: false,
  };
}

/**
 * The namespace every restore runs in, tried for real, entered the way restores enter it (the
 * restore chain's program, or unshare): what confinement allows, measured.
 */
export async function checkRestoreNamespace(): Promise<DoctorCheck> {
  const command = inRestoreNamespace(findRestoreChain(), { isGuarded: false }, ["true"]);
  const run = await runToCompletion(command, { timeoutMs: 10_000, killGraceMs: 0 });
  return run.code === 0
    ? { name: "restore namespace", status: "ok", detail: `${command.join(" ")} works`, isRequired: true }
    : {
        name: "restore namespace",
        status: "broken",
        detail: `${command.join(" ")} failed: ${run.stderr.trim().split("\n")[0] || describeExit(run)}`,
        fix: "restores need a new PID and mount namespace with its own /proc: CAP_SYS_ADMIN, and no seccomp or AppArmor rule against unshare and mount",
        isRequired: true,
      };
}
