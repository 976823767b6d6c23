"""pixelmcp: an MCP server that makes, edits and understands images on your own GPU."""

__version__ = "0.1.0"
