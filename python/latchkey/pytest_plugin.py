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


def _server(config):
    return Server(binary=config.getoption("latchkey_bin"))


@pytest.fixture(scope="session")
def latchkey_session(pytestconfig):
    with _server(pytestconfig) as server:
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
def latchkey_fresh(pytestconfig):
    with _server(pytestconfig) as server:
        yield server
