"""Proxy mode (`--proxy-to`), its recording (`--record`) and replay (`--replay`)."""
