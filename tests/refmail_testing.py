"""Helpers shared by the tests (imported by name: ``from refmail_testing import ...``; the
fixtures that use them are in tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from refmail.config import STANDARD_PORTS

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
DOMAINS = ("example.test", "example.org")
HOSTNAME = "mx.example.test"

# ---------------------------------------------------------------- the real command, in a process

PACKAGE_ROOT = Path(__import__("refmail").__file__).resolve().parent.parent


def refmail_env() -> dict[str, str]:
    """The environment for ``python -m refmail`` in a child: the same refmail these tests
    import (installed or source tree), whatever the child's working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


class ServeProcess:
    """``python -m refmail serve`` in a child process, every port ephemeral (from refmail.toml),
    with the listener addresses read from what it prints before ``refmail ready``."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        (data_dir / "refmail.toml").write_text(
            f'hostname = "{HOSTNAME}"\ndomains = {list(DOMAINS)!r}\n'.replace("'", '"')
            + "[ports]\n"
            + "".join(f"{service} = 0\n" for service in STANDARD_PORTS)
            + "[limits]\nauth_failure_delay = 0.01\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refmail", "serve", "--data", str(data_dir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=data_dir,
            env=refmail_env(),
        )
        self.addresses: dict[str, tuple[str, int]] = {}
        self.banner: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.banner.append(line.rstrip("\n"))
            if line.strip() == "refmail ready":
                break
            name, _, rest = line.partition(" ")
            if name in STANDARD_PORTS:
                host, _, port = rest.split()[0].rpartition(":")
                self.addresses[name] = (host.strip("[]"), int(port))
        else:
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"refmail serve did not get ready:\n{err}")

    def address(self, service: str) -> tuple[str, int]:
        return self.addresses[service]

    def stop(self, timeout: float = 20.0) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=10)
