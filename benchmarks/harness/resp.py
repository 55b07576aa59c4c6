"""One RESP encoder and one small blocking client, for set-up, checks and light traffic
(load goes through redis-benchmark or ``loadgen``). Replies are parsed by hiredis."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from .procs import BenchError

CHUNK = 500  # messages per BUS PUBLISH when populating a server


def command(*args: bytes | str | int) -> bytes:
    """A request as a RESP array of bulk strings (what redis-cli and redis-py send)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A flat [key, value, ...] reply (BUS INFO, XINFO) as a dict with str keys."""
    return {text(k): v for k, v in zip(flat[::2], flat[1::2], strict=True)}


def info_fields(reply: bytes | str) -> dict[str, str]:
    """An INFO reply's `name:value` lines."""
    fields = {}
    for line in text(reply).splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name] = value.strip()
    return fields


class Client:
    """A blocking RESP client on 127.0.0.1 (not for load)."""

    def __init__(self, port: int, timeout: float = 30.0, host: str = "127.0.0.1",
                 nodelay: bool = False) -> None:
        import hiredis

        self.sock = socket.create_connection((host, port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader: Any = hiredis.Reader()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, *args: bytes | str | int) -> None:
        self.sock.sendall(command(*args))

    def call(self, *args: bytes | str | int, errors_ok: bool = False) -> Any:
        self.send(*args)
        return self.read(errors_ok)

    def read(self, errors_ok: bool = False) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, Exception) and not errors_ok:
                    raise BenchError(f"server error: {reply}")
                return reply
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise BenchError("server closed the connection")
            self.reader.feed(chunk)

    def pump(self) -> Any:
        """Read what is there (one recv at most): one complete reply, or False."""
        reply = self.reader.gets()
        if reply is not False:
            return reply
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise BenchError("connection closed")
        self.reader.feed(chunk)
        return self.reader.gets()

    def publish(self, messages: Sequence[bytes], chunk: int = CHUNK, depth: int = 1) -> None:
        """BUS PUBLISH in chunks, `depth` requests in flight; every message must apply."""
        chunks = [messages[i:i + chunk] for i in range(0, len(messages), chunk)]
        sent = 0
        for done in range(len(chunks)):
            while sent < len(chunks) and sent < done + depth:
                self.send("BUS", "PUBLISH", *chunks[sent])
                sent += 1
            bad = [o for o in self.read() if o != b"applied"]
            if bad:
                raise BenchError(f"BUS PUBLISH: {len(bad)} of {len(chunks[done])} not "
                                 f"applied, first: {bad[0]!r}")

    def bus_info(self) -> dict[str, Any]:
        return pairs(self.call("BUS", "INFO"))

    def info(self, section: str = "") -> dict[str, str]:
        return info_fields(self.call("INFO", *([section] if section else [])))


def reply_and_size(port: int, *args: bytes | str | int,
                   timeout: float = 30.0) -> tuple[Any, int]:
    """One request on a connection of its own: its reply (an error reply as the exception
    hiredis makes of it) and the reply's size on the wire in bytes."""
    import hiredis

    reader: Any = hiredis.Reader()
    size = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command(*args))
        while True:
            reply = reader.gets()
            if reply is not False:
                return reply, size
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise BenchError(f"{' '.join(map(str, args))}: connection closed")
            size += len(chunk)
            reader.feed(chunk)


def call(port: int, *args: bytes | str | int, errors_ok: bool = False,
         timeout: float = 30.0) -> Any:
    """One request on a connection of its own."""
    with Client(port, timeout) as client:
        return client.call(*args, errors_ok=errors_ok)
