"""The BGP-4 protocol library: codec, session state machine and asyncio speaker.

Knows nothing of ExpressRoute or labs; everything above it builds on these pieces.
"""
