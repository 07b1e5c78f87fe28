/** What a cache entry records of the in-app runtime (in its manifest). */
export interface RuntimeManifest {
  /** The app's control pipes at dump time ("pipe:[INODE]"), handed fresh ones on restore. */
  readonly control: { readonly down: string; readonly up: string };
  /** How many participants (Node processes, JVMs) were blocked on the down pipe at dump
   * time: each restored copy needs that many verdict bytes. */
  readonly participants: number;
  /** Every participant understands "reseed" (protocol 2): a copy left stopped (serve's
   * spare) reseeds as soon as it is restored, and only its restore hooks wait for its resume.
   * Absent in snapshots of older runtimes. */
  readonly canReseedEarly?: boolean;
}
