"""Routers, one module per resource; each API function includes the routers it serves."""
