"""The pytest plugin (entry point ``pytest11`` named ``latchkey``: loaded by every
pytest run of an environment the wheel is installed in; where plugin autoloading
is off, ``-p latchkey`` loads it, or ``-p latchkey.pytest_plugin`` from a
checkout).

Fixtures, each a latchkey.Server:
  latchkey          per test: the session's server, DEBUG RESET before the test
                    (empty databases, no scripts, faults or locks, the clock
                    running). CONFIG SET changes, ACL users and client names are
                    kept: a test that changes those takes latchkey_fresh.
  latchkey_session  one server for the session, not reset.
  latchkey_fresh    per test: a server of its own, ended after the test.
A server of a fixture is killed at the end of its scope whatever the outcome.
"""

import pytest

from ._server import Server


def pytest_addoption(parser):
    group = parser.getgroup("latchkey")
    group.addoption("--latchkey-bin", default=None,
                    help="the latchkey binary (default: $LATCHKEY_BIN, the wheel's, "
                         "a checkout's target/release or target/debug)")


# --latchkey-bin of the run, read once at configure time: a fixture that
# took `pytestconfig` for it would cost every test that uses it (pytest
# visits a fixture's own arguments each time it is requested, cached or not:
# about 30 us a test, measured with benches/fixture_py.py).
# A stack: a pytest run inside a test (pytester's inline runs) configures
# and unconfigures on top of the outer one, whose option comes back after.
_binaries = []


def pytest_configure(config):
    _binaries.append(config.getoption("latchkey_bin"))


def pytest_unconfigure(config):
    if _binaries:
        _binaries.pop()


def _server():
    return Server(binary=_binaries[-1] if _binaries else None)


@pytest.fixture(scope="session")
def latchkey_session():
    with _server() as server:
        yield server


@pytest.fixture
def latchkey(latchkey_session):
    if not latchkey_session.alive:
        # A test shut it down (SHUTDOWN, or killed it): a new one, new port.
        latchkey_session.restart()
    latchkey_session.reset()
    # Returned, not yielded: nothing to undo after the test, and a fixture
    # without a teardown costs pytest less per test.
    return latchkey_session


@pytest.fixture
def latchkey_fresh():
    with _server() as server:
        yield server
