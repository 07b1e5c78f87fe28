/** Restore latency buckets, in seconds: a spare resumes in milliseconds, a cold path takes seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/**
 * What serve counts, rendered in the Prometheus text format (version 0.0.4). Five series do
 * not need prom-client's registry: the format is a few lines, and this stays off the import
 * path of everything else.
 */
export class ServeMetrics {
  restores = 0;
  resumes = 0;
  coldStarts = 0;
  failures = 0;
  readonly #latencyCounts: number[] = LATENCY_BUCKETS.map(() => 0);
  #latencySum = 0;
  #latencyCount = 0;

  /** From the demand (the first queued connection) to the instance serving. */
  observeStartSeconds(seconds: number): void {
    LATENCY_BUCKETS.forEach((bound, index) => {
      if (seconds <= bound) this.#latencyCounts[index] = (this.#latencyCounts[index] ?? 0) + 1;
    });
    this.#latencySum += seconds;
    this.#latencyCount += 1;
  }

  render(gauges: { readonly instances: number; readonly spares: number; readonly queued: number }): string {
    const lines: string[] = [];
    const metric = (name: string, type: string, help: string, samples: readonly string[]) => {
      lines.push(
        `# HELP warmstart_serve_${name} ${help}`,
        `# TYPE warmstart_serve_${name} ${type}`,
        ...samples,
      );
    };
    metric("instances", "gauge", "Instances of the app serving connections.", [
      `warmstart_serve_instances ${gauges.instances}`,
    ]);
    metric("spare_instances", "gauge", "Restored instances left stopped, waiting for a connection.", [
      `warmstart_serve_spare_instances ${gauges.spares}`,
    ]);
    metric(
      "queued_connections",
      "gauge",
      "Connections waiting in the accept queues of the front and the instances.",
      [`warmstart_serve_queued_connections ${gauges.queued}`],
    );
    metric("restores_total", "counter", "Instances restored from a snapshot (spares resumed included).", [
      `warmstart_serve_restores_total ${this.restores}`,
    ]);
    metric("spare_resumes_total", "counter", "Stopped spares resumed for a connection.", [
      `warmstart_serve_spare_resumes_total ${this.resumes}`,
    ]);
    metric("cold_starts_total", "counter", "Cold starts (in a private network, to take a snapshot).", [
      `warmstart_serve_cold_starts_total ${this.coldStarts}`,
    ]);
    metric("start_failures_total", "counter", "Attempts to start an instance that failed.", [
      `warmstart_serve_start_failures_total ${this.failures}`,
    ]);
    metric(
      "restore_latency_seconds",
      "histogram",
      "From the first waiting connection to an instance serving it.",
      [
        ...LATENCY_BUCKETS.map(
          (bound, index) =>
            `warmstart_serve_restore_latency_seconds_bucket{le="${bound}"} ${this.#latencyCounts[index] ?? 0}`,
        ),
        `warmstart_serve_restore_latency_seconds_bucket{le="+Inf"} ${this.#latencyCount}`,
        `warmstart_serve_restore_latency_seconds_sum ${this.#latencySum}`,
        `warmstart_serve_restore_latency_seconds_count ${this.#latencyCount}`,
      ],
    );
    return `${lines.join("\n")}\n`;
  }
}
