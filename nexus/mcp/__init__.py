"""The MCP front end (fastmcp): :mod:`~nexus.mcp.server` builds and runs the server and its tools,
:mod:`~nexus.mcp.schema` holds what the tools accept and return, :mod:`~nexus.mcp.errors` turns failures into one-line
tool errors, and :mod:`~nexus.mcp.auth` the bearer authentication of the HTTP transport.

Imported as ``nexus.mcp.<module>``; this package module itself imports nothing (``mcp`` alone is the MCP SDK).
"""
