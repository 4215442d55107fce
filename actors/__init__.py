"""The runtime shell on Ray: region actors, their supervisor, feeds, the executor and persistence."""

import os as _os

# A Ray started here (no cluster address given) binds to loopback, not the machine's network address.
# Ray reads this when it is imported, so it is set before any module of this package imports ray; a
# process that joins a cluster (RAY_ADDRESS) keeps Ray's own choice of address.
if "RAY_ADDRESS" not in _os.environ:
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
