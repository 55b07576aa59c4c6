"""How many clients the process's file descriptors allow, decided at start as redis-server
decides it, with the HTTP port's connections given their share.

Rules:

- Each client connection holds one descriptor: ``max_clients`` RESP clients (TCP, TLS and
  the Unix socket together) and, with ``http_port`` set, ``http_max_clients`` HTTP
  connections. ``RESERVED_FDS`` more are kept for the server's own files (Redis keeps 32
  for the interpreter's and event loop's, the log, the listeners, the bus's connections),
  plus, with HTTP, the refused HTTP connections that may linger a moment
  (``httpconn.MAX_LINGERING``).
- The soft ``RLIMIT_NOFILE`` is raised to what they need (the hard limit too where the
  process may), logged at info as Redis logs it.
- When the limit stays short, the clients get what it leaves: RESP and HTTP in proportion
  to what was asked, each at least one, so HTTP sockets can never use up what RESP
  clients were promised, nor the reverse. This is logged at warning in redis-server's
  words, and CONFIG GET ``maxclients`` / ``http-max-clients`` and INFO show the figures
  in force.
- With fewer descriptors than the reserve and one client of each kind need, the server
  does not start (``ConfigError`` with Redis's message).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .config import ConfigError, ServerConfig
from .httpconn import MAX_LINGERING

__all__ = ["RESERVED_FDS", "Budget", "fit_to_descriptors", "plan"]

log = logging.getLogger("clusterwatch.server")

RESERVED_FDS: Final = 32

Limits = tuple[int, int]


@dataclass(frozen=True)
class Budget:
    """What the descriptors allow, and what to say about it."""

    max_clients: int
    http_max_clients: int
    notices: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def plan(max_clients: int, http_max_clients: int, *,
         get: Callable[[], Limits], set_limits: Callable[[Limits], None]) -> Budget:
    """Raise the descriptor limit for the clients asked for, or lower them to fit it.
    ``http_max_clients`` is 0 when the HTTP port is off."""
    reserved = RESERVED_FDS + (MAX_LINGERING if http_max_clients else 0)
    needed = max_clients + http_max_clients + reserved
    soft, hard = get()
    if _at_least(soft, needed):
        return Budget(max_clients, http_max_clients)
    try:
        set_limits((needed, hard if _at_least(hard, needed) else needed))
    except (OSError, ValueError) as exc:
        failure = _reason(exc)
    else:
        return Budget(max_clients, http_max_clients, notices=(
            f"Increased maximum number of open files to {needed} (it was originally set "
            f"to {soft}).",))
    limit = soft
    if hard != resource.RLIM_INFINITY and hard > soft:
        try:
            set_limits((hard, hard))
            limit = hard
        except (OSError, ValueError):
            pass
    kinds = 2 if http_max_clients else 1
    if limit - reserved < kinds:
        raise ConfigError(f"Your current 'ulimit -n' of {limit} is not enough for the server "
                          f"to start. Please increase your open file limit to at least "
                          f"{needed}. Exiting.")
    resp, http = _share(limit - reserved, max_clients, http_max_clients)
    asked = f"maxclients of {max_clients}" + (
        f" and http-max-clients of {http_max_clients}" if http_max_clients else "")
    reduced = [f"{name} has been reduced to {now}" for name, now, before in
               (("maxclients", resp, max_clients), ("http-max-clients", http, http_max_clients))
               if now < before]
    return Budget(resp, http, warnings=(
        f"You requested {asked} requiring at least {needed} max file descriptors.",
        f"Server can't set maximum open files to {needed} because of OS error: {failure}.",
        f"Current maximum open files is {limit}. {' and '.join(reduced)} to compensate for "
        f"low ulimit. If you need higher maxclients increase 'ulimit -n'.",
    ))


def _share(available: int, resp: int, http: int) -> tuple[int, int]:
    """``available`` descriptors between RESP and HTTP clients, in proportion to the asks."""
    if not http:
        return min(resp, available), 0
    http_share = max(1, available * http // (resp + http))
    return min(resp, available - http_share), min(http, http_share)


def _at_least(limit: int, needed: int) -> bool:
    return limit == resource.RLIM_INFINITY or limit >= needed


def _reason(exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    # Python reports setrlimit's EPERM as ValueError("not allowed to raise maximum limit").
    return os.strerror(errno.EPERM)


def fit_to_descriptors(config: ServerConfig) -> ServerConfig:
    """``config`` with its client limits fitted to RLIMIT_NOFILE (raised where it can be),
    what was done logged."""
    http = config.http_max_clients if config.http_port else 0
    budget = plan(config.max_clients, http,
                  get=lambda: resource.getrlimit(resource.RLIMIT_NOFILE),
                  set_limits=lambda limits: resource.setrlimit(resource.RLIMIT_NOFILE, limits))
    for line in budget.notices:
        log.info(line)
    for line in budget.warnings:
        log.warning(line)
    if budget.max_clients == config.max_clients and budget.http_max_clients == http:
        return config
    return dataclasses.replace(config, max_clients=budget.max_clients,
                               http_max_clients=budget.http_max_clients or
                               config.http_max_clients)
