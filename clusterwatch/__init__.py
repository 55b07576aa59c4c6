"""clusterwatch: a cluster status and health server that speaks the Redis protocol.

The layers live at the top of the repository, where its owner keeps them, and are this
package's sub-packages (``clusterwatch.resp``, ``clusterwatch.cluster``,
``clusterwatch.commands``, ``clusterwatch.server``, ``clusterwatch.agent``): in a checkout
through the links in this folder, in a wheel as plain folders.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]

try:
    __version__: str = metadata.version("clusterwatch")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
