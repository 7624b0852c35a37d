"""A TCP proxy on loopback whose link can be made slow or dropping, for network-fault tests.

Runs its own event loop in a daemon thread. ``delay`` adds latency to every chunk in both
directions; ``drop`` closes every open connection now and refuses... nothing: new ones are
accepted and then closed at once while it is set (a flapping network path).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class FlakyProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.delay = 0.0
        self.drop = False
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.drop:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not self.drop and (data := await reader.read(65536)):
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.drop:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def cut(self) -> None:
        """Drop the link: close every open connection, and new ones at once."""
        self.drop = True

        def close_all() -> None:
            for writer in list(self._writers):
                writer.close()

        self._loop.call_soon_threadsafe(close_all)

    def heal(self) -> None:
        self.drop = False
        self.delay = 0.0


@contextlib.contextmanager
def flaky_proxy(target_port: int) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(target_port)
    proxy._thread.start()
    proxy._ready.wait(5)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(_shut_down(), proxy._loop).result(5)
        proxy._loop.call_soon_threadsafe(proxy._loop.stop)
        proxy._thread.join(5)


async def _shut_down() -> None:
    """Cancel the pipes (some may be sleeping out a long ``delay``) and let them finish."""
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
