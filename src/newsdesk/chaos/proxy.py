"""A TCP proxy that adds latency: put it between the service and Redis to make Redis slow.

asyncio, in a background thread with its own loop, so a synchronous test or benchmark can
start it, change the delay while traffic flows, and stop it. Every chunk read from either
side is forwarded `delay_s` later (each direction of each connection in order), which adds
about one delay per request and one per reply: a Redis round trip costs 2 x delay_s more.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from newsdesk.chaos.server import free_port


class LatencyProxy:
    """127.0.0.1:`port` -> target_host:target_port with `delay_s` added per chunk."""

    def __init__(self, target_host: str, target_port: int, *, port: int | None = None,
                 delay_s: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.delay_s = delay_s
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="latency-proxy",
                                        daemon=True)
        self._conns: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(timeout=5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.delay_s > 0:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._conns.discard(writer)
            self._conns.discard(up_writer)

    def set_delay(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def stop(self) -> None:
        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._conns):
                with contextlib.suppress(Exception):
                    w.close()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()  # its self-pipe sockets, else left to the garbage collector


class ProxyProcess:
    """`LatencyProxy` in a child process of its own, so that the delay it adds is not mixed
    with the GIL waits of a busy caller (a load generator in the same process would delay
    every forwarded chunk by its own work). The delay is changed over the child's stdin."""

    def __init__(self, target_port: int, *, port: int | None = None) -> None:
        import subprocess
        import sys

        self.port = port or free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsdesk.chaos.proxy", str(self.port), str(target_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("latency proxy did not start")

    def set_delay(self, delay_s: float) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{delay_s}\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()  # "ok": applied

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _main() -> None:
    import sys

    proxy = LatencyProxy("127.0.0.1", int(sys.argv[2]), port=int(sys.argv[1]))
    proxy.start()
    print("ready", flush=True)
    for line in sys.stdin:
        proxy.set_delay(float(line))
        print("ok", flush=True)
    proxy.stop()


if __name__ == "__main__":
    _main()
