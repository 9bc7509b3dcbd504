"""The cached-bytes limit: a server that only writes an exposition it already holds.

    python bench/cached_bytes_server.py FILE GZIP_FILE PORT

Reads both files once, then answers every request on 127.0.0.1:PORT with FILE's
bytes, or GZIP_FILE's when the request accepts gzip (one blocking ``sendall``
of the head and body, connection closed after), so a scrape of it costs only
the connection, the kernel's copy and the reader. The benchmark scrapes it
exactly as it scrapes the exporters: plain and gzip in turn.
"""

import socket
import sys
from pathlib import Path


def main() -> None:
    answers = {}
    for packed, name in ((False, sys.argv[1]), (True, sys.argv[2])):
        body = Path(name).read_bytes()
        encoding = "Content-Encoding: gzip\r\n" if packed else ""
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            f"{encoding}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        answers[packed] = (head, body)
    with socket.create_server(("127.0.0.1", int(sys.argv[3])), backlog=64) as listener:
        print("ready", flush=True)
        while True:
            connection, _ = listener.accept()
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                else:
                    head, body = answers[b"accept-encoding: gzip" in request.lower()]
                    connection.sendall(head)
                    connection.sendall(body)


if __name__ == "__main__":
    main()
