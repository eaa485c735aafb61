"""A hostile or spoofed AWS endpoint, and a recording HTTP proxy: raw
sockets on loopback, for tests/integration/test_hostile.py.

HostileEndpoint answers every request with whatever bytes its `respond`
function returns (headers and all, exactly as given: control characters,
impossible dates), and records each request's method, path and headers. An
ordinary HTTP server library would refuse to send most of these answers.

RecordingProxy is a forward proxy (absolute-URI requests and CONNECT
tunnels) that records every request line it is given and relays it to the
named loopback host; it refuses any other host (only 127.0.0.1/::1/localhost
are ever reached). A test learns from it which connections went through a
proxy."""
import socket
import threading

LOOPBACK = ("127.0.0.1", "::1", "localhost", "[::1]")


def _read_request(conn):
    """(request line, headers dict (lowercase names), body) or None."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0") or 0)
    while len(body) < n:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return lines[0], headers, body


def http_answer(status, body=b"", headers=()):
    """Raw bytes of an HTTP/1.1 answer; headers are (name, value) pairs sent
    verbatim, so a value may hold any byte."""
    if isinstance(body, str):
        body = body.encode()
    out = f"HTTP/1.1 {status} X\r\n".encode()
    for k, v in headers:
        out += (k.encode("latin-1") if isinstance(k, str) else k) + b": " + \
            (v.encode("latin-1") if isinstance(v, str) else v) + b"\r\n"
    out += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    return out


class _Server:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(30)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def stop(self):
        self.stopped = True
        self.sock.close()


class HostileEndpoint(_Server):
    def __init__(self, respond):
        self.respond = respond  # (method, path, headers, body) -> bytes
        self.requests = []
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, conn):
        with conn:
            try:
                req = _read_request(conn)
                if not req:
                    return
                line, headers, body = req
                method, path = line.split(" ")[:2]
                with self.lock:
                    self.requests.append((method, path, headers))
                conn.sendall(self.respond(method, path, headers, body))
            except OSError:
                pass


class RecordingProxy(_Server):
    def __init__(self):
        self.lines = []  # every request line given to the proxy
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def seen(self):
        with self.lock:
            return list(self.lines)

    def _serve(self, conn):
        with conn:
            try:
                self._relay(conn)
            except OSError:
                pass

    def _relay(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        with self.lock:
            self.lines.append(line)
        method, target = line.split(" ")[:2]
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            rest = data.split(b"\r\n\r\n", 1)[1]
        else:  # GET http://host:port/path HTTP/1.1
            after = target.split("://", 1)[1]
            hostport, _, path = after.partition("/")
            host, _, port = hostport.rpartition(":")
            # relayed in origin form, as a proxy does
            rest = line.replace(target, "/" + path, 1).encode("latin-1") + \
                data[len(line):]
        if host not in LOOPBACK:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        up = socket.create_connection((host.strip("[]"), int(port or 80)), 10)
        with up:
            if method == "CONNECT":
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            self._pump(conn, up)

    @staticmethod
    def _pump(a, b):
        def one(src, dst):
            try:
                while True:
                    d = src.recv(65536)
                    if not d:
                        break
                    dst.sendall(d)
            except OSError:
                pass
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=one, args=(b, a), daemon=True)
        t.start()
        one(a, b)
        t.join(30)
