"""latchkey as a test fixture: spawn the server, connect redis-py to it, move its
clock, inject faults and reset it between tests.

    import latchkey
    with latchkey.Server() as s:
        s.client.set("k", "v", px=1000)
        s.advance_time(1000)
        assert s.client.get("k") is None

Under pytest the plugin (entry point ``pytest11``, module
``latchkey.pytest_plugin``) gives the fixtures ``latchkey`` (per test: the
session's server after ``DEBUG RESET``), ``latchkey_session`` and
``latchkey_fresh`` (a server of its own per test).
"""

from ._server import LatchkeyError, Server, find_binary

__all__ = ["Server", "LatchkeyError", "find_binary"]
