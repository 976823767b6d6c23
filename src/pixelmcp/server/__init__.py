"""MCP wiring: the server, its image inputs/outputs and the image store."""
