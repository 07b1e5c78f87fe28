import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./workloads.js";

/** The results are committed, and `npm test` runs `biome check .`: leave them as biome formats them. */
export function formatWithBiome(paths: readonly string[]): void {
  const biome = join(ROOT, "node_modules/.bin/biome");
  if (!existsSync(biome)) return;
  spawnSync(biome, ["format", "--write", ...paths], { cwd: ROOT, stdio: "ignore", timeout: 60_000 });
}
