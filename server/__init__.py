"""The I/O layer: asyncio listeners and connections, config, logging, CLI."""
