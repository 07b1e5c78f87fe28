/**
 * The helper that receives sd_notify datagrams, run as `python3 -I -S -u -c NOTIFY_HELPER <socket path>`.
 * Node cannot bind an AF_UNIX SOCK_DGRAM socket, and sd_notify speaks only datagrams.
 *
 * Its stdout protocol, one JSON object a line: first `{"bound": true}` once the socket
 * exists, then `{"message": {"READY": "1", ...}}` per datagram (newline-separated
 * KEY=VALUE pairs; file descriptors passed along, as FDSTORE=1 does, are dropped).
 *
 * It removes the socket and exits on SIGTERM or when its stdin reaches EOF: the parent
 * holds the other end of that pipe, so even a parent killed with SIGKILL takes it along.
 */
export const NOTIFY_HELPER = `
import json, os, signal, socket, stat, sys, threading

path = sys.argv[1]

def leave(*_):
    try:
        os.unlink(path)
    except OSError:
        pass
    os._exit(0)

signal.signal(signal.SIGTERM, leave)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    if os.path.exists(path) and stat.S_ISSOCK(os.lstat(path).st_mode):
        os.unlink(path)
    sock.bind(path)
except OSError as error:
    print(error.strerror or error, file=sys.stderr, flush=True)
    os._exit(1)
threading.Thread(target=lambda: (sys.stdin.buffer.read(), leave()), daemon=True).start()

try:
    print(json.dumps({"bound": True}), flush=True)
    while True:
        data = sock.recv(65536)
        fields = {}
        for line in data.decode("utf-8", "replace").split("\\n"):
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
        print(json.dumps({"message": fields}), flush=True)
finally:
    leave()
`;
