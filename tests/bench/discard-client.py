#!/usr/bin/env python3
"""A registry client that costs as little CPU as a client can, for tests/bench/registry.sh.

usage: discard-client.py HOST:PORT QUERY BLOBS
GETs every blob listed in BLOBS ('REPOSITORY DIGEST SIZE' lines) over one HTTP/1.1 keep-alive
connection, checks the status and Content-Length, and discards each body in the kernel
(recv with MSG_TRUNC: counted, never copied to user space). It verifies no digest: the point is
to leave the CPU to the server under test. Prints the bytes received.
"""
import socket
import sys


def main():
    hostport, query, blobs = sys.argv[1], sys.argv[2], sys.argv[3]
    host, port = hostport.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    buf = memoryview(bytearray(4 << 20))
    total = 0
    for line in open(blobs):
        repo, digest, size = line.split()
        sock.sendall(f"GET /v2/{repo}/blobs/{digest}{query} HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode())
        head = b""
        while True:  # read exactly the header, leaving the body in the socket
            peek = sock.recv(65536, socket.MSG_PEEK)
            if not peek:
                sys.exit(f"{hostport} closed the connection before answering {digest}")
            end = (head + peek).find(b"\r\n\r\n")
            if end >= 0:
                head += sock.recv(end + 4 - len(head))
                break
            head += sock.recv(len(peek))
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            sys.exit(f"{repo} {digest}: {lines[0]}")
        length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
        if length != int(size):
            sys.exit(f"{repo} {digest}: Content-Length {length}, manifest says {size}")
        left = length
        while left:
            n = sock.recv_into(buf, min(left, len(buf)), socket.MSG_TRUNC)
            if n == 0:
                sys.exit(f"{repo} {digest}: connection closed with {left} bytes left")
            left -= n
        total += length
    print(total)


if __name__ == "__main__":
    main()
