"""MCP tools, one module per family; each a thin typed wrapper over engine/ or providers/."""
