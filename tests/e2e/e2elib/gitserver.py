"""A read-only Git server over HTTPS: `git http-backend` (smart HTTP) behind a tiny server.

Argo CD's repo-server clones from it the way it clones from GitHub: https, anonymous, the
server's certificate checked against a CA Argo CD is given (argocd-tls-certs-cm). Only
fetching is served (git-upload-pack); pushes are refused, the harness changes the served
repository on disk. Runs inside the cluster's network namespace on the node IP:

    python3 -m e2elib.gitserver --root DIR --listen 10.250.0.2:8443 --cert C --key K
"""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# Request paths git's smart HTTP protocol uses for fetching; anything else is a 404/403.
FETCH_SERVICE = "git-upload-pack"
BACKEND_TIMEOUT = 120


def parse_cgi_response(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Split a CGI response into (status, headers, body)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    if not sep:
        raise ValueError("git http-backend wrote no header block")
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers.append((name, value))
    return status, headers, body


def is_fetch_request(method: str, path: str, query: str) -> bool:
    """True for the requests a clone/fetch makes; False for pushes and everything else."""
    if method == "GET":
        return path.endswith("/info/refs") and query == f"service={FETCH_SERVICE}"
    return method == "POST" and path.endswith(f"/{FETCH_SERVICE}")


class GitHandler(BaseHTTPRequestHandler):
    server_version = "esp-e2e-git/1"
    protocol_version = "HTTP/1.1"
    root = "."

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        self._serve(self._read_body())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _serve(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if not is_fetch_request(self.command, url.path, url.query):
            self._reply(403, [("Content-Type", "text/plain")], b"read-only: fetch only\n")
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        proc = subprocess.run(
            ["git", "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            timeout=BACKEND_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0 and not proc.stdout:
            msg = proc.stderr.decode(errors="replace")
            self._reply(500, [("Content-Type", "text/plain")], msg.encode())
            return
        status, headers, payload = parse_cgi_response(proc.stdout)
        self._reply(status, headers, payload)

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


def make_server(root: str, host: str, port: int, cert: str, key: str) -> ThreadingHTTPServer:
    handler = type("Handler", (GitHandler,), {"root": os.path.abspath(root)})
    server = ThreadingHTTPServer((host, port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory holding the bare repositories")
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server key (PEM)")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = make_server(args.root, host, int(port), args.cert, args.key)
    print(f"serving {args.root} on https://{args.listen}/ (fetch only)", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
