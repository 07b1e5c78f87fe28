import { release } from "node:os";
import type { Admission } from "../cache/archive-import.js";
import { hashCpuFlags } from "../cache/key-fields.js";
import { rekeyForHost, type SnapshotDocument } from "../cache/snapshot-document.js";
import { findCriu } from "../criu/find-criu.js";
import { WarmstartError } from "../errors.js";
import { checkHostCompatibility } from "./host-compat.js";
import { collectHostFacts, dumpCpuinfoImage, type HostFacts } from "./host-facts.js";

/**
 * Admits a verified snapshot document on this host: compatible hosts get it under the key
 * this host computes for the same app (its own kernel, CPU and CRIU in the host fields),
 * so the next `run` finds it; others get the differences, in words.
 */
export async function admitOnThisHost(
  document: SnapshotDocument,
  cpuinfoImage: Buffer | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Admission> {
  const criu = await findCriu(env);
  if (!criu.found)
    return { isAdmitted: false, detail: "no usable CRIU here to check or restore the snapshot" };
  const here = await collectHostFacts(criu.criu.path, criu.criu.version.text, env);
  const verdict = await checkHostCompatibility(document.host, here, {
    criuPath: criu.criu.path,
    cpuinfoImage,
  });
  if (!verdict.isCompatible) {
    return { isAdmitted: false, detail: `this host cannot restore it: ${verdict.differences.join("; ")}` };
  }
  const { key, baseKey, fields } = rekeyForHost(document.manifest, {
    kernelRelease: release(),
    cpuFlagsSha256: hashCpuFlags(),
    criuVersion: criu.criu.version.text,
  });
  return { isAdmitted: true, key, baseKey, fields };
}

/** This host's facts and CRIU's image of its CPU: what an entry dumped here travels with. */
export async function describeThisHost(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ host: HostFacts; cpuinfoImage: Buffer | undefined }> {
  const criu = await findCriu(env);
  if (!criu.found) {
    throw new WarmstartError("criu-missing", "CRIU is needed to describe this host's CPU for the snapshot.", {
      hint: "run: sudo scripts/install-criu.sh",
    });
  }
  const [host, cpuinfoImage] = await Promise.all([
    collectHostFacts(criu.criu.path, criu.criu.version.text, env),
    dumpCpuinfoImage(criu.criu.path),
  ]);
  return { host, cpuinfoImage };
}
