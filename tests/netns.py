"""Test hosts as Linux network namespaces, each joined to this one by a veth pair.

Host ``i`` sees Redis at ``<subnet>.i.1`` (this side of its link) and is itself
``<subnet>.i.2``; cutting a host takes this side of its link down, so its packets go
nowhere, as when a machine's cable is pulled. Needs root and iproute2.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"crprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        stderr = getattr(exc, "stderr", "") or str(exc)
        return f"cannot make a network namespace: {stderr.strip()}"
    _ip("netns", "delete", probe)
    return None


@dataclass
class Host:
    """One namespace: its name, its address, and the address it reaches this side by."""

    netns: str
    link: str
    address: str
    gateway: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def cut(self) -> None:
        _ip("link", "set", self.link, "down")

    def restore(self) -> None:
        _ip("link", "set", self.link, "up")


class Hosts:
    """``count`` namespaces made on ``__enter__`` and removed on ``__exit__``."""

    def __init__(self, count: int) -> None:
        tag = f"{os.getpid() % 100000}"
        subnet = f"10.{random.randint(100, 250)}"
        self.hosts = [Host(netns=f"cr{tag}h{i}", link=f"cr{tag}v{i}",
                           address=f"{subnet}.{i}.2", gateway=f"{subnet}.{i}.1")
                      for i in range(1, count + 1)]

    def __enter__(self) -> list[Host]:
        try:
            for h in self.hosts:
                _ip("netns", "add", h.netns)
                _ip("link", "add", h.link, "type", "veth", "peer", "name", h.link + "p")
                _ip("link", "set", h.link + "p", "netns", h.netns)
                _ip("addr", "add", h.gateway + "/24", "dev", h.link)
                _ip("link", "set", h.link, "up")
                inside = ["netns", "exec", h.netns, "ip"]
                _ip(*inside, "addr", "add", h.address + "/24", "dev", h.link + "p")
                _ip(*inside, "link", "set", h.link + "p", "up")
                _ip(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self.hosts

    def __exit__(self, *exc: object) -> None:
        for h in self.hosts:
            subprocess.run(["ip", "link", "delete", h.link], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "delete", h.netns], capture_output=True, timeout=10)
