"""The cached-bytes limit: a server that only writes an exposition it already holds.

    python bench/cached_bytes_server.py FILE PORT

Reads FILE once, then answers every request on 127.0.0.1:PORT with its bytes
(one blocking ``sendall`` of the head and body, connection closed after), so
a scrape of it costs only the connection, the kernel's copy and the reader.
The benchmark scrapes it exactly as it scrapes the exporters.
"""

import socket
import sys
from pathlib import Path


def main() -> None:
    body = Path(sys.argv[1]).read_bytes()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_server(("127.0.0.1", int(sys.argv[2])), backlog=64) as listener:
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
                    connection.sendall(head)
                    connection.sendall(body)


if __name__ == "__main__":
    main()
