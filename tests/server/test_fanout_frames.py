"""The fan-out writes its message frames by hand (once per protocol and pattern): they
are the bytes the reply encoder makes for the same push."""

from __future__ import annotations

import pytest

from clusterwatch.commands._patternindex import PatternIndex
from clusterwatch.resp import Push, encode
from clusterwatch.server.watch import _Message


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("pattern", [None, b"__cluster__:*", b"", b"x" * 300])
def test_frames_are_the_encoders(protocol: int, pattern: bytes | None) -> None:
    channel, text = b"__cluster__:node", b"+node master abc 10.0.0.1 7000 index=7" * 9
    message = _Message(channel, text, (), PatternIndex().matching(channel))
    expected = encode(Push([b"message", channel, text] if pattern is None
                           else [b"pmessage", pattern, channel, text]), protocol)
    assert message.frame(protocol, pattern) == expected
