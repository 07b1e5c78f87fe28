/**
 * One try of a probe: passed, or what it found instead ("connection refused", "HTTP 404"),
 * so that a readiness timeout can say what each probe last saw rather than only its name.
 */
export type Attempt = { readonly isPassed: true } | { readonly isPassed: false; readonly detail: string };

export const PASSED: Attempt = { isPassed: true };

export function failed(detail: string): Attempt {
  return { isPassed: false, detail };
}

/** What a failed connect or request says, in words: errno codes a user may not know. */
export function describeNetworkError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case undefined:
      return error.message || "connection closed";
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host not found (${error.code})`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `unreachable (${error.code})`;
    default:
      return error.message || String(error.code);
  }
}
