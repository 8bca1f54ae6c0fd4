"""Tool implementations shared by the catalog (services) and the runner: the built-in tools, the
guarded HTTP client behind `http_request`, and connecting to MCP servers. Nothing here reads
settings or the database: callers pass limits, allowlists and header values in."""
