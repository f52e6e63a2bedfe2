"""The web layer: aiohttp app factory, auth, one module per area. Handlers stay thin."""
