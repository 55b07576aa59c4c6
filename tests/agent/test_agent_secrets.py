"""What the agent logs names its status command by its program only: the rest of the
command line may carry credentials (``curl -u user:password ...``)."""

from __future__ import annotations

import logging

import pytest

from clusterwatch.agent.respclient import RespClient
from clusterwatch.agent.sidecar import Agent, AgentConfig

SECRET = "hunter2-s3cret"


async def test_a_failing_status_command_is_logged_without_its_arguments(
        caplog: pytest.LogCaptureFixture) -> None:
    config = AgentConfig(node_id="n1", addr="10.0.0.1:7000",
                         status_command=f"true --user ops --password {SECRET}")
    agent = Agent(config, RespClient("127.0.0.1", 1))
    with caplog.at_level(logging.WARNING, logger="clusterwatch.agent"):
        await agent.heartbeat()  # no JSON on stdout: the heartbeat goes without it
    assert "status unavailable: status command 'true': not JSON" in caplog.text
    assert SECRET not in caplog.text
