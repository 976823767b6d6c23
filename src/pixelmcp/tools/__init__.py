"""The MCP tools, one module per family, and what they share: argument types and checks (arguments.py),
prompt rewriting (rewriting.py), results (results.py) and the state they reach through their context
(state.py). Tools reach backends only through the router."""
