export interface ToolResult {
  readonly exitCode: number;
  /** stdout and stderr, interleaved. */
  readonly output: string;
  /** The last lines of the output, for messages. */
  readonly tail: string;
}

/**
 * Runs a command to its end and returns what it said; never throws for a failed exit
 * (callers judge). execa is imported here, off the launch path: setup and doctor only.
 */
export async function runTool(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<ToolResult> {
  const { execa } = await import("execa");
  const result = await execa(file, args, {
    reject: false,
    all: true,
    stdin: "ignore",
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.env ? { env: options.env, extendEnv: false } : {}),
    timeout: options.timeoutMs ?? 600_000,
  });
  const output = result.all ?? "";
  const exitCode = result.exitCode ?? (result.failed ? 1 : 0);
  const tail = output.trim().split("\n").slice(-5).join("\n") || (result.shortMessage ?? "");
  return { exitCode, output, tail };
}
