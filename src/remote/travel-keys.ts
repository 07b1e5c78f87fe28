import { createPublicKey, type KeyObject } from "node:crypto";
import { formatPublicKey, loadSigningKey, readCacheSigningKey } from "../cache/snapshot-signature.js";
import type { FleetSettings } from "./fleet-settings.js";

export interface TravelKeys {
  readonly signingKey: KeyObject;
  /** The configured keys and the cache's own: what this cache exported, it takes back. */
  readonly trustedKeys: readonly string[];
}

export function openTravelKeys(cacheDir: string, settings: FleetSettings): TravelKeys {
  const ownKey = readCacheSigningKey(cacheDir);
  const signingKey = settings.signingKeyPath ? loadSigningKey(settings.signingKeyPath) : ownKey;
  return {
    signingKey,
    trustedKeys: [...settings.trustedKeys, formatPublicKey(createPublicKey(ownKey))],
  };
}
