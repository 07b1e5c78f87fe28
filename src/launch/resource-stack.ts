/**
 * What a launch owns (its runtime directory, staged images, the notify helper, the lazy-pages
 * daemon, the dump lock, a pending dump), released on one path, last acquired first: when the
 * launch is over, when a step gives a resource up early, and at process exit. At exit only
 * synchronous work can run, so each resource says what it needs then (usually: remove a
 * directory, kill a process); processes spawned through exec/owned-process.ts are killed at
 * exit by that module already.
 */
export interface Owned {
  /** Releases now (once); later calls and the stack's release skip it. */
  release(): Promise<void>;
  /** Gives the resource up without releasing it: something else now owns it (a lazy-pages
   * daemon that outlives a detached launch keeps its staged images). */
  disown(): void;
}

interface Entry {
  readonly name: string;
  readonly release: () => void | Promise<void>;
  readonly releaseAtExit: (() => void) | undefined;
  isReleased: boolean;
}

const liveStacks = new Set<ResourceStack>();
let isExitHookInstalled = false;

export class ResourceStack {
  readonly #entries: Entry[] = [];
  /** Errors of releases, for -v: releasing must never fail a launch. */
  readonly errors: string[] = [];

  constructor() {
    liveStacks.add(this);
    if (!isExitHookInstalled) {
      isExitHookInstalled = true;
      process.on("exit", () => {
        for (const stack of liveStacks) stack.releaseAtExit();
      });
    }
  }

  /**
   * Adds a resource. `releaseAtExit` runs instead of `release` if the process exits first;
   * without it, `release` must be synchronous to run at exit (it is called and not awaited).
   */
  own(name: string, release: () => void | Promise<void>, releaseAtExit?: () => void): Owned {
    const entry: Entry = { name, release, releaseAtExit, isReleased: false };
    this.#entries.push(entry);
    return {
      release: () => this.#releaseOne(entry),
      disown: () => {
        entry.isReleased = true;
      },
    };
  }

  /** Releases everything still held, newest first. Never throws. */
  async releaseAll(): Promise<void> {
    for (const entry of [...this.#entries].reverse()) await this.#releaseOne(entry);
    liveStacks.delete(this);
  }

  /** The synchronous part, for process exit. */
  releaseAtExit(): void {
    for (const entry of [...this.#entries].reverse()) {
      if (entry.isReleased) continue;
      entry.isReleased = true;
      try {
        (entry.releaseAtExit ?? entry.release)();
      } catch {
        // Exiting: whatever is left is found stale by the next launch or by prune.
      }
    }
  }

  async #releaseOne(entry: Entry): Promise<void> {
    if (entry.isReleased) return;
    entry.isReleased = true;
    try {
      await entry.release();
    } catch (error) {
      this.errors.push(`${entry.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
