"""The ACL file (``--aclfile``): Redis's ``users.acl``, read at start and by ACL LOAD,
written by ACL SAVE through a temporary file and a rename, so a crash mid-write never
leaves half a file."""

from __future__ import annotations

import os
from pathlib import Path

from clusterwatch.commands import AccessControl, User

NO_ACL_FILE = (
    "This Redis instance is not configured to use an ACL file. You may want to specify "
    "users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have "
    "a Redis configuration file set) in order to store users in the Redis configuration."
)


def read_acl_file(acl: AccessControl, path: str) -> dict[str, User]:
    """The users the file defines; raises ``OSError`` or ``AclFileError``."""
    return acl.parse_file(Path(path).read_text(encoding="utf-8"), path)


def write_acl_file(acl: AccessControl, path: str) -> None:
    target = Path(path)
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(acl.file_text())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)  # as Redis: a failed save leaves no file behind
        raise
