"""Operating a deployment: snapshot export and import, and the system functions Convex's CLI
calls. Sits between the runtime parts (engine, platform, runners) and the server's transports,
which call it; it opens no sockets itself.
"""

from __future__ import annotations
