"""MCP wiring: the server (its tools, resources and lifespan) and its transports (stdio, streamable HTTP)."""
