"""A TCP link between two regions that a test or a bench can cut and restore.

`LinkProxy` forwards connections from its own port to an upstream (a region's PostgreSQL or
Redis). `cut()` plays a partition: every open connection is reset and the port stops listening,
so new connections are refused; `restore()` listens again on the same port. Clients reconnect on
their own (a connection pool's pre-ping, Redis' reconnect), as across a real link.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading

BUFFER_BYTES = 65536


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LinkProxy:
    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self.connections_made = 0

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def __enter__(self) -> LinkProxy:
        self.restore()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.cut()

    def restore(self) -> None:
        """Listen again (on the same port): new connections go through."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until `restore`."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in connections:
            _reset(connection)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(upstream)
                    return
                self._connections |= {client, upstream}
                self.connections_made += 1
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER_BYTES):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections -= {source, target}
            _reset(source)
            _reset(target)


def _reset(connection: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a dropped link looks to the other end."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
    with contextlib.suppress(OSError):
        connection.close()


class LinkProcess:
    """The same link in a process of its own, so that forwarding bytes never waits for the
    caller's interpreter (a bench measuring lag must not sit in the path it measures).
    Driven over its stdin: ``cut`` / ``restore``, each answered ``ok``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> LinkProcess:
        command = [sys.executable, "-m", "standins.link_proxy", self.upstream[0]]
        command += [str(self.upstream[1]), str(self.port)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._expect("listening")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)

    def cut(self) -> None:
        self._send("cut")

    def restore(self) -> None:
        self._send("restore")

    def _send(self, command: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        self._expect("ok")

    def _expect(self, word: str) -> None:
        assert self._process is not None and self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"link proxy answered {line!r}, not {word!r}")


def main() -> None:
    """`python -m standins.link_proxy HOST PORT LISTEN_PORT`: see `LinkProcess`."""
    host, port, listen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    link = LinkProxy(host, port, listen)
    link.restore()
    print("listening", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "cut":
            link.cut()
        elif command == "restore":
            link.restore()
        else:
            print(f"unknown command {command!r}", flush=True)
            continue
        print("ok", flush=True)


if __name__ == "__main__":
    main()
