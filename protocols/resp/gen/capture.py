#!/usr/bin/env python3
"""Records golden bytes: a relay on 127.0.0.1:LISTEN to a real redis-server on UPSTREAM that
appends client->server bytes to OUT.req and server->client bytes to OUT.rep, for each
connection, until stopped.  Usage: capture.py LISTEN UPSTREAM OUT"""
import socket
import sys
import threading


def pump(src, dst, log):
    while True:
        data = src.recv(65536)
        if not data:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        log.write(data)
        log.flush()
        dst.sendall(data)


def main():
    listen, upstream, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    req, rep = open(out + ".req", "ab"), open(out + ".rep", "ab")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen))
    srv.listen(16)
    while True:
        c, _ = srv.accept()
        u = socket.create_connection(("127.0.0.1", upstream))
        threading.Thread(target=pump, args=(c, u, req), daemon=True).start()
        threading.Thread(target=pump, args=(u, c, rep), daemon=True).start()


main()
