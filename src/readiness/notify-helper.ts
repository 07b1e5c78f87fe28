/**
 * The helper that receives sd_notify datagrams, run as
 * `python3 -I -S -u -c NOTIFY_HELPER <socket path> [<upstream socket> <main pid>]`.
 * Node cannot bind or send on an AF_UNIX SOCK_DGRAM socket, and sd_notify speaks only
 * datagrams.
 *
 * Its stdout protocol, one JSON object a line: first `{"bound": true}` once the socket
 * exists, then `{"message": {"READY": "1", ...}}` per datagram (newline-separated
 * KEY=VALUE pairs; file descriptors passed along, as FDSTORE=1 does, are dropped).
 *
 * With an upstream socket (warmstart runs under systemd's Type=notify), each message is
 * also passed on, without READY= and MAINPID= (warmstart is the service's main process and
 * says READY=1 itself once the launch is ready) and without what comes with file
 * descriptors (BARRIER=, FDSTORE=...), and each line warmstart writes on the
 * helper's stdin (a JSON string) is sent upstream. Both go out with the main PID in their
 * credentials (allowed to root): systemd accepts notifications from the main process only,
 * unless the unit says NotifyAccess=all.
 *
 * It removes the socket and exits on SIGTERM or when its stdin reaches EOF: the parent
 * holds the other end of that pipe, so even a parent killed with SIGKILL takes it along.
 */
export const NOTIFY_HELPER = `
import json, os, signal, socket, stat, struct, sys, threading

path = sys.argv[1]
# READY and MAINPID are warmstart's to say; BARRIER and FDSTORE come with file descriptors,
# which this helper does not pass on.
NOT_PASSED = ("READY", "MAINPID", "BARRIER", "FDSTORE", "FDNAME", "FDSTOREREMOVE", "FDPOLL")
upstream = sys.argv[2] if len(sys.argv) > 3 else None
main_pid = int(sys.argv[3]) if len(sys.argv) > 3 else 0

def leave(*_):
    try:
        os.unlink(path)
    except OSError:
        pass
    os._exit(0)

def send_upstream(payload):
    if not upstream:
        return
    address = "\\0" + upstream[1:] if upstream.startswith("@") else upstream
    out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        creds = struct.pack("3i", main_pid, os.getuid(), os.getgid())
        try:
            out.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)], 0, address)
        except PermissionError:
            out.sendto(payload, address)
    except OSError as error:
        print(json.dumps({"upstreamError": str(error)}), flush=True)
    finally:
        out.close()

def read_commands():
    for line in sys.stdin:
        try:
            send_upstream(json.loads(line).encode("utf-8"))
        except ValueError:
            pass
    leave()

signal.signal(signal.SIGTERM, leave)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
        os.unlink(path)
    sock.bind(path)
except OSError as error:
    print(error.strerror or error, file=sys.stderr, flush=True)
    os._exit(1)
threading.Thread(target=read_commands, daemon=True).start()

try:
    print(json.dumps({"bound": True}), flush=True)
    while True:
        data = sock.recv(65536)
        fields = {}
        passed = []
        for line in data.decode("utf-8", "replace").split("\\n"):
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
                if key not in NOT_PASSED:
                    passed.append(line)
        if passed:
            send_upstream("\\n".join(passed).encode("utf-8"))
        print(json.dumps({"message": fields}), flush=True)
finally:
    leave()
`;
