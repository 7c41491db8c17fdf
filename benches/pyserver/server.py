"""An independent xiaozhi server for wsvisor's benchmarks.

It is built on the same library and version as xiaozhi-esp32-server
(`websockets` 14.2, its asyncio `serve()`), so that the daemon is measured
against the WebSocket stack it meets in the field rather than against its
own loopback server. It behaves like that server where a keep-alive daemon
can tell the difference (notes B8/B9):

- any path is upgraded; a `Device-Id` header (or `device-id` query
  parameter) is required, the token is not checked (auth off, the default);
- the client hello is answered with a server hello: transport websocket, a
  fresh session_id, and the client's audio_params (24 kHz Opus otherwise);
- the library's keep-alive: a WebSocket Ping every `--ping-interval` s
  (20), closed with 1011 when no Pong comes within `--ping-timeout` s (20);
  Pings from the client are answered by the library; messages above
  `--max-size` (1 MiB) close with 1009;
- idle close: Close 1000 with an empty reason once no activity was seen
  for `--idle-close` s (180 = 120 + 60; 0 = never), checked every `--idle-check` s
  (10). Activity is a `listen` `detect` with text or a binary frame (taken
  as voice); Pings, Pongs, hellos and other texts are not;
- `listen` `detect` with text is answered with `stt`, `tts` start and
  `tts` stop; non-JSON text is echoed; `listen` without `state` closes
  the connection (the real server's handler raises). With `--echo-binary`,
  binary frames are sent back (a forwarding benchmark's server leg).

Control: one command a line on stdin, one JSON line on stdout (the first
line announces the URL). It exits when stdin closes, so it never outlives
the benchmark that started it.

    {"url": "ws://127.0.0.1:PORT/xiaozhi/v1/", "pid": N}
    stats              -> {"open": N, "ready": N, "binary": N, "texts": N,
                           "hellos": N, "idle_closed": N}
    now                -> {"now": T}           (CLOCK_MONOTONIC seconds)
    rst                -> {"fault": "rst", "at": T, "connections": N}
    close [CODE]       -> {"fault": "close", "code": C, "at": T, "connections": N}
    hellos SINCE       -> {"hellos": [[device_id, T], ...]}   (answered at T >= SINCE)
    quit

Times are time.monotonic(), i.e. CLOCK_MONOTONIC, the clock of Rust's
Instant on Linux, so a driver may compare them with its own.
"""

import argparse
import asyncio
import json
import logging
import os
import socket
import struct
import sys
import time
import uuid
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

DEFAULT_AUDIO_PARAMS = {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}

# Hello times kept per device: enough for many fault rounds, bounded.
HELLO_HISTORY = 64


class Session:
    """One upgraded connection."""

    def __init__(self, ws, device_id):
        self.ws = ws
        self.device_id = device_id
        self.session_id = None
        self.last_activity = time.monotonic()


class Server:
    """The sessions, the counters and the handlers."""

    def __init__(self, args):
        self.args = args
        self.sessions = set()
        self.counters = dict.fromkeys(("binary", "texts", "hellos", "idle_closed"), 0)
        self.hellos = {}

    def device_of(self, ws):
        device = ws.request.headers.get("device-id")
        if device is None:
            query = parse_qs(urlparse(ws.request.path).query)
            device = query.get("device-id", [None])[0]
        return device

    async def handle(self, ws):
        device = self.device_of(ws)
        if device is None:
            # What the real server answers a browser or a bare probe.
            await ws.send("端口正常，如需测试连接，请启动digital-human测试")
            await ws.close()
            return
        session = Session(ws, device)
        self.sessions.add(session)
        idle = asyncio.create_task(self.idle_watch(session)) if self.args.idle_close > 0 else None
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await self.on_binary(session, message)
                elif not await self.on_text(session, message):
                    break
        except ConnectionClosed:
            pass
        finally:
            if idle is not None:
                idle.cancel()
            self.sessions.discard(session)

    async def on_binary(self, session, data):
        self.counters["binary"] += 1
        session.last_activity = time.monotonic()
        if self.args.echo_binary:
            await session.ws.send(data)

    async def on_text(self, session, text):
        """False when the connection must end (as the real server's handler raising)."""
        try:
            message = json.loads(text)
        except ValueError:
            self.counters["texts"] += 1
            await session.ws.send(text)
            return True
        if not isinstance(message, dict):
            self.counters["texts"] += 1
            await session.ws.send(text)
            return True
        kind = message.get("type")
        if kind == "hello":
            await self.on_hello(session, message)
            return True
        self.counters["texts"] += 1
        if kind == "listen":
            if "state" not in message:
                await session.ws.close()
                return False
            if message["state"] == "detect" and "text" in message:
                session.last_activity = time.monotonic()
                await self.answer_detect(session, str(message["text"]))
        return True

    async def on_hello(self, session, message):
        session.session_id = str(uuid.uuid4())
        welcome = {
            "type": "hello",
            "version": 1,
            "transport": "websocket",
            "audio_params": message.get("audio_params") or DEFAULT_AUDIO_PARAMS,
            "session_id": session.session_id,
        }
        await session.ws.send(json.dumps(welcome))
        now = time.monotonic()
        self.counters["hellos"] += 1
        times = self.hellos.setdefault(session.device_id, [])
        times.append(now)
        del times[:-HELLO_HISTORY]

    async def answer_detect(self, session, text):
        sid = session.session_id
        for reply in (
            {"type": "stt", "text": text.strip(), "session_id": sid},
            {"type": "tts", "state": "start", "session_id": sid},
            {"type": "tts", "state": "stop", "session_id": sid},
        ):
            await session.ws.send(json.dumps(reply, ensure_ascii=False))

    async def idle_watch(self, session):
        """The real server's `_check_timeout` task: a look every idle_check s."""
        while True:
            await asyncio.sleep(self.args.idle_check)
            if time.monotonic() - session.last_activity >= self.args.idle_close:
                self.counters["idle_closed"] += 1
                await session.ws.close(1000, "")
                return

    def reset_all(self):
        """RST every connection: SO_LINGER 0, then close without flushing."""
        at = time.monotonic()
        sessions = list(self.sessions)
        for session in sessions:
            transport = session.ws.transport
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return {"fault": "rst", "at": at, "connections": len(sessions)}

    async def close_all(self, code):
        """Close every connection with `code` and an empty reason, all at once."""
        at = time.monotonic()
        sessions = list(self.sessions)
        await asyncio.gather(*(s.ws.close(code, "") for s in sessions), return_exceptions=True)
        return {"fault": "close", "code": code, "at": at, "connections": len(sessions)}

    def stats(self):
        return {
            "open": len(self.sessions),
            "ready": sum(1 for s in self.sessions if s.session_id is not None),
            **self.counters,
        }

    def hellos_since(self, since):
        return {
            "hellos": [[device, t] for device, times in self.hellos.items() for t in times if t >= since]
        }


async def control(server, url):
    """Reads commands from stdin until it closes; answers on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(value):
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    answer({"url": url, "pid": os.getpid()})
    while True:
        line = await reader.readline()
        if not line:
            return
        words = line.decode().split()
        if not words:
            continue
        command, rest = words[0], words[1:]
        if command == "quit":
            return
        if command == "stats":
            answer(server.stats())
        elif command == "now":
            answer({"now": time.monotonic()})
        elif command == "rst":
            answer(server.reset_all())
        elif command == "close":
            answer(await server.close_all(int(rest[0]) if rest else 1000))
        elif command == "hellos":
            answer(server.hellos_since(float(rest[0]) if rest else 0.0))
        else:
            answer({"error": f"unknown command {command!r}"})


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ping-interval", type=float, default=20.0, help="seconds; 0 = no server Pings")
    parser.add_argument("--ping-timeout", type=float, default=20.0)
    parser.add_argument("--max-size", type=int, default=1 << 20)
    parser.add_argument("--idle-close", type=float, default=180.0, help="seconds without activity; 0 = never")
    parser.add_argument("--idle-check", type=float, default=10.0, help="seconds between idle checks")
    parser.add_argument("--echo-binary", action="store_true")
    parser.add_argument("--backlog", type=int, default=4096)
    return parser.parse_args()


async def main():
    args = parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    server = Server(args)
    async with serve(
        server.handle,
        args.host,
        args.port,
        ping_interval=args.ping_interval or None,
        ping_timeout=args.ping_timeout or None,
        max_size=args.max_size,
        backlog=args.backlog,
    ) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        await control(server, f"ws://{args.host}:{port}/xiaozhi/v1/")
        ws_server.close(close_connections=False)
        for session in list(server.sessions):
            session.ws.transport.abort()


if __name__ == "__main__":
    asyncio.run(main())
