"""An incremental local mirror of an object-storage log root, for TensorBoard's fast loader.

TensorBoard's fast loader (the Rust data server) reads local paths only, and its Python loader reads
S3 so slowly that a few GB take hours (tensorflow/tensorboard#1494). tbhub therefore copies the event
files of each object-storage root into a folder under its state directory and points the fast loader
there. Event files only ever grow while a job writes, so after the first copy a sync transfers only
what is new::

    remote object          manifest (last sync)        what ``sync()`` does
    ─────────────          ────────────────────        ────────────────────
    new key                —                           fetch whole (temp name, then rename)
    same size and ETag     same                        nothing
    grown                  smaller size                fetch the appended range only, append it
    shrunk, or rewritten   different                   fetch whole again (temp name, then rename)
    gone                   listed                      remove the local copy (and empty folders)

Invariants:

- Only event files are mirrored (TensorBoard's rule: the name contains ``tfevents``); keys with a
  ``.tbhub-`` component (tbhub's working names) are ignored, as local discovery ignores them.
- Nothing is ever written outside ``local_dir``: a key with an empty, ``.`` or ``..`` component (or
  an absolute one) is rejected and reported in ``SyncStats.rejected``, never fetched.
- TensorBoard never sees a half-copied new file: new and replaced files are written under a temporary
  name without ``tfevents`` (which TensorBoard ignores) and renamed into place. Appends are written
  in whole fetched ranges; a partial last record is what TensorBoard sees of any file being written.
- An append is checked: the last ``APPEND_CHECK_BYTES`` already mirrored are fetched again with the
  new range and compared; an object that grew but is not a pure append is fetched whole.
- The manifest (``.tbhub-mirror.json``: size, ETag and mtime per key) is written atomically after the
  files; a file whose local size disagrees with the manifest is fetched whole, so a sync killed at any
  moment is finished by the next one. One sync at a time per folder (a thread lock and ``flock``, so
  two processes sharing a state directory take turns).
- A listing failure raises ``LogRootError`` and changes nothing; a failure on one file is reported in
  ``SyncStats.errors`` and that file is retried by the next sync.

Modules: ``manifest`` (the mirror's own files: manifest, folder lock, temporary names), ``listing``
(the remote root's event files and what each needs), ``transfer`` (fetching an object whole or its
appended range), ``sync`` (``Mirror``, one sync of one folder) and ``keeper`` (``MirrorKeeper``,
every endpoint's mirror on its schedule, and the status the hub shows).
"""

from __future__ import annotations

from tbhub.adapters.storage.mirror.keeper import RETRY_AFTER_S, MirrorKeeper, MirrorPlan, MirrorStatus
from tbhub.adapters.storage.mirror.listing import RemoteFiles, safe_relpath
from tbhub.adapters.storage.mirror.manifest import MANIFEST
from tbhub.adapters.storage.mirror.store import MirroredLogStore, mirrored_entry
from tbhub.adapters.storage.mirror.sync import SYNC_REQUESTS, Mirror, SyncStats
from tbhub.adapters.storage.mirror.transfer import APPEND_CHECK_BYTES

__all__ = [
    "APPEND_CHECK_BYTES",
    "MANIFEST",
    "RETRY_AFTER_S",
    "SYNC_REQUESTS",
    "Mirror",
    "MirrorKeeper",
    "MirrorPlan",
    "MirrorStatus",
    "MirroredLogStore",
    "RemoteFiles",
    "SyncStats",
    "mirrored_entry",
    "safe_relpath",
]
