import { join } from "node:path";
import type { EntryStore, Manifest } from "./entry-store.js";
import { hashFileContent } from "./file-hash.js";

export type VerifyOutcome =
  | { readonly state: "ok"; readonly manifest: Manifest }
  | { readonly state: "refused" | "corrupt"; readonly detail: string }
  | { readonly state: "missing" };

/**
 * Everything a lookup checks, plus the sha256 of every image file, pages included: a lookup
 * skips hashing the pages to keep warm launches fast, so a flipped bit in the app's memory
 * is only found here.
 */
export async function verifyEntry(store: EntryStore, key: string): Promise<VerifyOutcome> {
  const found = await store.lookup(key);
  if (!found.hit) {
    return found.reason === "missing" ? { state: "missing" } : { state: found.reason, detail: found.detail };
  }
  const { imagesDir, manifest } = found.entry;
  for (const [name, expected] of Object.entries(manifest.files)) {
    const path = join(imagesDir, name);
    let sha256: string;
    try {
      sha256 = await hashFileContent(path);
    } catch (error) {
      return {
        state: "corrupt",
        detail: `${path} cannot be read (${(error as NodeJS.ErrnoException).code})`,
      };
    }
    if (sha256 !== expected.sha256) {
      return { state: "corrupt", detail: `${path} does not match its sha256 in the manifest` };
    }
  }
  return { state: "ok", manifest };
}
