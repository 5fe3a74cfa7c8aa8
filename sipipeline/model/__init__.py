"""Model access without Dagster: types, journal, wire format, transports, client, server."""
