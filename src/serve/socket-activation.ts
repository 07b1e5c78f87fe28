import { WarmstartError } from "../errors.js";
import type { FrontSocket } from "./front.js";
import { toListenAddress } from "./listen-address.js";
import { isListeningStream, readLocalAddress, setCloseOnExec, setReusePort } from "./socket-calls.js";

/** systemd passes sockets from fd 3 on (sd_listen_fds(3)). */
const FIRST_FD = 3;
const VARIABLES = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] as const;

/**
 * The listening sockets systemd (or systemd-socket-activate) passed, when LISTEN_PID names
 * this process; undefined when none were. The variables are removed from the environment, as
 * sd_listen_fds(1) does: the app must not take fd 3 for a socket of its own, and they are not
 * part of what the app is (its cache key). A passed fd that is not a listening TCP socket is
 * an error naming it.
 */
export function takeActivatedSockets(env: NodeJS.ProcessEnv): FrontSocket[] | undefined {
  const pid = env.LISTEN_PID;
  const count = env.LISTEN_FDS;
  for (const name of VARIABLES) delete env[name];
  if (pid === undefined || count === undefined || Number(pid) !== process.pid) return undefined;
  const n = Number(count);
  if (!Number.isInteger(n) || n < 1) {
    throw new WarmstartError(
      "invalid-option",
      `Expected LISTEN_FDS to be a positive count, got ${JSON.stringify(count)}.`,
    );
  }
  const sockets: FrontSocket[] = [];
  for (let fd = FIRST_FD; fd < FIRST_FD + n; fd++) {
    const local = isListeningStream(fd) ? readLocalAddress(fd) : undefined;
    if (!local) {
      throw new WarmstartError(
        "invalid-option",
        `The socket passed as fd ${fd} (LISTEN_FDS) is not a listening TCP socket.`,
        {
          hint: "serve takes ListenStream= sockets of a .socket unit with Accept=no",
        },
      );
    }
    setCloseOnExec(fd);
    // ReusePort=yes in the .socket unit is the sure way; set here too, for units without it.
    setReusePort(fd);
    sockets.push({ address: toListenAddress(local), fd, isInherited: true });
  }
  return sockets;
}
