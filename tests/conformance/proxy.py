#!/usr/bin/env python3
"""Loopback proxy that adds `Authorization: Bearer <token>` to every request.

The MCP conformance suite cannot send a bearer token, so it talks to this proxy, which forwards
each request to the server unchanged apart from that header: method, path and query, body and
every end-to-end header -- including the ORIGINAL `Host` (the proxy's own address, which the
server is configured to expect as its public URL) and `Origin`, so the server's Host/Origin checks
see exactly what the suite sent. Responses come back with their status, headers and body; bodies
without a length (SSE streams) are relayed chunk by chunk as they arrive, never buffered.

    proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT --token-file FILE [--log FILE]

Python standard library only. One upstream connection per request (loopback; SSE streams may
stay open for as long as the client keeps them).
"""

import argparse
import http.client
import http.server
import socket
import sys
import threading

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business on each leg.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


def parse_addr(value):
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive towards the client
    upstream = ("127.0.0.1", 0)
    token = ""
    log_file = None
    log_lock = threading.Lock()

    def log_message(self, fmt, *args):
        if self.log_file:
            with self.log_lock:
                self.log_file.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
                self.log_file.flush()

    def _read_request_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers, dropped
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _forward(self):
        body = self._read_request_body()
        connection_tokens = {
            t.strip().lower() for t in self.headers.get("Connection", "").split(",") if t.strip()
        }
        upstream = http.client.HTTPConnection(*self.upstream, timeout=300)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                lower = name.lower()
                if lower in HOP_BY_HOP or lower in connection_tokens or lower == "authorization":
                    continue
                if lower in ("content-length", "expect"):
                    continue  # the body was read whole (and any 100-continue answered) here
                upstream.putheader(name, value)  # Host and Origin included, unchanged
            upstream.putheader("Authorization", "Bearer " + self.token)
            if body is not None:
                upstream.putheader("Content-Length", str(len(body)))
            elif self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", "0")
            upstream.endheaders(body)
            response = upstream.getresponse()
        except OSError as e:
            upstream.close()
            self.send_error(502, "proxy: upstream unreachable: %s" % e)
            return

        try:
            self.log_request(response.status)
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() in HOP_BY_HOP:
                    continue
                self.send_header(name, value)
            no_body = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
            length = response.getheader("Content-Length")
            if no_body:
                self.end_headers()
            elif length is not None:
                self.end_headers()
                remaining = int(length)
                while remaining > 0:
                    data = response.read(min(65536, remaining))
                    if not data:
                        break
                    self.wfile.write(data)
                    remaining -= len(data)
                self.wfile.flush()
            else:
                # Unknown length (an SSE stream): relay each piece as it arrives, chunked (or,
                # to an HTTP/1.0 client, delimited by closing the connection).
                chunked = self.request_version == "HTTP/1.1"
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.close_connection = True
                self.end_headers()
                self.wfile.flush()
                while True:
                    data = response.read1(65536)
                    if not data:
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    self.wfile.flush()
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, http.client.HTTPException):
            self.close_connection = True
        finally:
            response.close()
            upstream.close()

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _forward


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout)):
            return  # a client that went away between requests is no news
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port to listen on (loopback)")
    parser.add_argument("--upstream", required=True, help="host:port of the MCP server")
    parser.add_argument("--token-file", required=True, help="file holding the bearer token")
    parser.add_argument("--log", help="append one line per request to this file")
    args = parser.parse_args()

    with open(args.token_file) as f:
        Proxy.token = f.read().strip()
    if not Proxy.token:
        sys.exit("proxy: empty token file")
    Proxy.upstream = parse_addr(args.upstream)
    if args.log:
        Proxy.log_file = open(args.log, "a", buffering=1)
    server = Server(parse_addr(args.listen), Proxy)
    print("proxy: %s -> %s" % (args.listen, args.upstream), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
