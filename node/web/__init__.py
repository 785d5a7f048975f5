"""The HTTP transport: one aiohttp application with a sub-app per protocol."""
