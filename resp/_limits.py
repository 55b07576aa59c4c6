"""Reader limits. Each default names its precedent; all are configurable."""

from __future__ import annotations

from dataclasses import dataclass

# Redis PROTO_INLINE_MAX_SIZE: an inline request line may be at most 64 KiB.
DEFAULT_MAX_INLINE_SIZE = 64 * 1024
# Redis proto-max-bulk-len is 512 MiB; a status server's largest argument is a node
# message batch, so 8 MiB is plenty and bounds memory per client far tighter.
DEFAULT_MAX_BULK_LENGTH = 8 * 1024 * 1024
# Redis accepts up to INT_MAX arguments; BUS PUBLISH batches are the only long requests.
DEFAULT_MAX_MULTIBULK_LENGTH = 1024 * 1024
# Redis client-query-buffer-limit is 1 GiB; ours bounds one incomplete request.
DEFAULT_MAX_QUERY_BUFFER = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderLimits:
    max_inline_size: int = DEFAULT_MAX_INLINE_SIZE
    max_bulk_length: int = DEFAULT_MAX_BULK_LENGTH
    max_multibulk_length: int = DEFAULT_MAX_MULTIBULK_LENGTH
    max_query_buffer: int = DEFAULT_MAX_QUERY_BUFFER

    def __post_init__(self) -> None:
        for name in ("max_inline_size", "max_bulk_length", "max_multibulk_length",
                     "max_query_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
