"""Remote backends (OpenAI, Gemini, OpenAI-compatible servers, MCP sampling) behind the protocols in
pixelmcp.backends; pixelmcp/registry.py lists the providers, one row each."""
