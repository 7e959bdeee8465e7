"""Provider clients (remote HTTP APIs) and the local runtime. No MCP imports in this package."""
