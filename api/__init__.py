"""The edge: settings, REST and WebSocket routes, the dashboard page and the CLI."""
