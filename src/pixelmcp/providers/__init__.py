"""Remote backends (OpenAI, Gemini, OpenAI-compatible, MCP sampling) behind the protocols in
pixelmcp.backends."""
