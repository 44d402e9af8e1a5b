"""The use cases: the only layer that builds adapters from the config and combines them.

Interfaces (the CLI and the web app) call these modules and render what they return; adapters and the
core know nothing of them. See docs/architecture.md for where each use case lives.
"""
