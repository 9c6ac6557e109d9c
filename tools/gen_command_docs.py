#!/usr/bin/env python3
"""Regenerate src/cmd/docs.json from a real redis-server.

Starts a throw-away redis-server on a free loopback port, asks it for
`COMMAND DOCS` (every command) over RESP3, and writes the reply as JSON so
that src/cmd/docs.rs can replay it with the same RESP types.

Encoding of RESP3 values in the JSON file:

    bulk string  $   -> JSON string
    integer      :   -> JSON integer
    array        *   -> JSON array
    map          %   -> JSON object (keys are always bulk strings; order kept)
    null         _   -> JSON null          (also $-1 / *-1)
    boolean      #   -> JSON true / false
    double       ,   -> JSON number with a fraction, or {",": "inf"} etc.
    set          ~   -> {"~": [ ... ]}
    simple str   +   -> {"+": "text"}
    error        -   -> {"-": "ERR text"}
    verbatim     =   -> {"=": ["txt", "text"]}

Big numbers `(` and pushes `>` have no counterpart in strata's Reply type and
make the generator fail (COMMAND DOCS never sends them).

A JSON object with exactly one key that is one of the tags above is a tagged
value; every other object is a map. The generator refuses to write a map
whose only key would collide with a tag.

The top-level object maps the lowercase command name to its docs map.
By default the top-level commands and each `subcommands` map are sorted by
name (Redis sends them in hash-table order, which changes on every server
start); every other map keeps the exact order Redis sends. Pass
--server-order to keep Redis's order everywhere.

Standard library only. Usage:

    python3 tools/gen_command_docs.py [--redis-server PATH] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "src" / "cmd" / "docs.json"
TAGS = ("~", "+", "-", "=", ",")


# --------------------------------------------------------------------------
# RESP3 values that JSON cannot tell apart from plain ones.


class Simple(str):
    """RESP `+` simple string (a plain `str` is a bulk string)."""


class RError(str):
    """RESP `-` / `!` error."""


class BigNumber(str):
    """RESP3 `(` big number, kept as its decimal text."""


class Verbatim:
    """RESP3 `=` verbatim string: a three-letter format and the text."""

    def __init__(self, fmt: str, text: str) -> None:
        self.fmt = fmt
        self.text = text


class RSet(list):
    """RESP3 `~` set (a plain `list` is an array)."""


class Push(list):
    """RESP3 `>` push."""


class RMap(list):
    """RESP3 `%` map as an ordered list of (key, value) pairs."""


# --------------------------------------------------------------------------
# RESP3 parser.


class ProtocolError(Exception):
    pass


class Recorder:
    """Wraps a binary stream and keeps a copy of every byte read from it."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.data = bytearray()

    def readline(self) -> bytes:
        line = self.stream.readline()
        self.data += line
        return line

    def read(self, n: int) -> bytes:
        chunk = self.stream.read(n)
        self.data += chunk
        return chunk


class RespReader:
    def __init__(self, stream) -> None:
        self.stream = stream

    def _line(self) -> bytes:
        line = self.stream.readline()
        if not line:
            raise ProtocolError("connection closed by server")
        if not line.endswith(b"\r\n"):
            raise ProtocolError(f"line without CRLF: {line[:60]!r}")
        return line[:-2]

    def _exact(self, n: int) -> bytes:
        data = self.stream.read(n + 2)
        if len(data) != n + 2:
            raise ProtocolError("connection closed inside a blob")
        if data[-2:] != b"\r\n":
            raise ProtocolError("blob without trailing CRLF")
        return data[:-2]

    @staticmethod
    def _text(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"non UTF-8 string {raw[:60]!r}") from exc

    def read(self):
        line = self._line()
        if not line:
            raise ProtocolError("empty line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return Simple(self._text(rest))
        if kind == b"-":
            return RError(self._text(rest))
        if kind == b":":
            return int(rest)
        if kind == b"_":
            return None
        if kind == b"#":
            if rest == b"t":
                return True
            if rest == b"f":
                return False
            raise ProtocolError(f"bad boolean {rest!r}")
        if kind == b",":
            return float(rest)  # accepts inf, -inf, nan
        if kind == b"(":
            return BigNumber(self._text(rest))
        if kind in (b"$", b"!", b"="):
            n = int(rest)
            if n < 0:
                return None
            blob = self._text(self._exact(n))
            if kind == b"$":
                return blob
            if kind == b"!":
                return RError(blob)
            if len(blob) < 4 or blob[3] != ":":
                raise ProtocolError(f"bad verbatim string {blob[:20]!r}")
            return Verbatim(blob[:3], blob[4:])
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            if kind == b"*":
                return items
            return RSet(items) if kind == b"~" else Push(items)
        if kind == b"%":
            n = int(rest)
            pairs = RMap()
            for _ in range(n):
                key = self.read()
                pairs.append((key, self.read()))
            return pairs
        if kind == b"|":
            # Attribute: read and drop it, the real value follows.
            n = int(rest)
            for _ in range(2 * n):
                self.read()
            return self.read()
        raise ProtocolError(f"unknown RESP type byte {kind!r}")


def encode_command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


# --------------------------------------------------------------------------
# RESP value -> JSON-ready value.


def to_json(value, sort_key_maps: bool, parent_key: str | None = None):
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {",": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, Simple):
        return {"+": str(value)}
    if isinstance(value, RError):
        return {"-": str(value)}
    if isinstance(value, BigNumber):
        raise ProtocolError("unexpected big number in the reply")
    if isinstance(value, str):
        return value
    if isinstance(value, Verbatim):
        return {"=": [value.fmt, value.text]}
    if isinstance(value, RMap):
        pairs = list(value)
        if sort_key_maps and parent_key == "subcommands":
            pairs.sort(key=lambda kv: kv[0])
        obj: dict = {}
        for key, item in pairs:
            if type(key) is not str:
                raise ProtocolError(f"map key is not a bulk string: {key!r}")
            if key in obj:
                raise ProtocolError(f"duplicate map key {key!r}")
            obj[key] = to_json(item, sort_key_maps, key)
        if len(obj) == 1 and next(iter(obj)) in TAGS:
            raise ProtocolError(f"map would be read back as a tagged value: {obj!r}")
        return obj
    if isinstance(value, Push):
        raise ProtocolError("unexpected push message in the reply")
    if isinstance(value, RSet):
        return {"~": [to_json(item, sort_key_maps) for item in value]}
    if isinstance(value, list):
        return [to_json(item, sort_key_maps) for item in value]
    raise ProtocolError(f"cannot encode {type(value).__name__}")


def json_to_resp3(value) -> bytes:
    """Encode a JSON-ready value back to RESP3 (used to prove the file is lossless)."""
    if value is None:
        return b"_\r\n"
    if value is True:
        return b"#t\r\n"
    if value is False:
        return b"#f\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, float):
        return b",%s\r\n" % repr(value).encode()
    if isinstance(value, str):
        raw = value.encode()
        return b"$%d\r\n%s\r\n" % (len(raw), raw)
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(json_to_resp3(v) for v in value)
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in TAGS:
            tag, inner = next(iter(value.items()))
            if tag == "~":
                return b"~%d\r\n" % len(inner) + b"".join(json_to_resp3(v) for v in inner)
            if tag == "=":
                raw = f"{inner[0]}:{inner[1]}".encode()
                return b"=%d\r\n%s\r\n" % (len(raw), raw)
            if tag in "+-":
                return tag.encode() + inner.encode() + b"\r\n"
            return b",%s\r\n" % inner.encode()
        out = [b"%%%d\r\n" % len(value)]
        for key, item in value.items():
            out.append(json_to_resp3(key))
            out.append(json_to_resp3(item))
        return b"".join(out)
    raise TypeError(type(value).__name__)


# --------------------------------------------------------------------------
# Throw-away redis-server.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(encode_command("PING"))
                sock.settimeout(1.0)
                if sock.recv(64).startswith(b"+PONG"):
                    return
        except OSError as exc:
            last_error = exc
        time.sleep(0.05)
    raise RuntimeError(f"redis-server not ready after {timeout}s ({last_error})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # SIGTERM to this pid only
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def fetch_docs(server: str, ready_timeout: float):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="gen-command-docs-")
    log_path = os.path.join(workdir, "redis.log")
    cmd = [
        server,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", workdir,
        "--logfile", log_path,
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        try:
            wait_ready(proc, port, ready_timeout)
        except RuntimeError:
            try:
                sys.stderr.write(Path(log_path).read_text(errors="replace")[-2000:])
            except OSError:
                pass
            raise
        with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
            stream = sock.makefile("rb")
            reader = RespReader(stream)
            sock.sendall(encode_command("HELLO", "3"))
            hello = reader.read()
            if isinstance(hello, RError) or not isinstance(hello, RMap):
                raise ProtocolError(f"HELLO 3 failed: {hello!r}")
            info = dict(hello)
            sock.sendall(encode_command("COMMAND", "DOCS"))
            recorder = Recorder(stream)
            docs = RespReader(recorder).read()
            if not isinstance(docs, RMap):
                raise ProtocolError(f"COMMAND DOCS did not answer a map: {docs!r:.200}")
            return info.get("version"), docs, bytes(recorder.data)
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--server-order", action="store_true",
                        help="keep Redis's hash-table order for commands and subcommands")
    parser.add_argument("--ready-timeout", type=float, default=15.0)
    args = parser.parse_args()

    version, docs, raw = fetch_docs(args.redis_server, args.ready_timeout)

    # Self-check: the JSON encoding, read back in server order, must give the
    # very bytes Redis sent.
    as_sent = {name: to_json(entry, False) for name, entry in docs}
    if json_to_resp3(as_sent) != raw:
        raise ProtocolError("JSON encoding does not round-trip to the bytes Redis sent")

    sort = not args.server_order
    pairs = list(docs)
    if sort:
        pairs.sort(key=lambda kv: kv[0])
    out: dict = {}
    for name, entry in pairs:
        if type(name) is not str:
            raise ProtocolError(f"command name is not a bulk string: {name!r}")
        if not isinstance(entry, RMap):
            raise ProtocolError(f"docs of {name!r} are not a map")
        out[name.lower()] = to_json(entry, sort)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        # One command per line: compact, yet diffs stay readable.
        fh.write("{\n")
        for i, (name, entry) in enumerate(out.items()):
            sep = "," if i + 1 < len(out) else ""
            fh.write(json.dumps(name, ensure_ascii=False) + ":"
                     + json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
                     + sep + "\n")
        fh.write("}\n")
    os.replace(tmp, args.out)
    print(f"wrote {len(out)} commands from redis {version} to {args.out} "
          f"({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
