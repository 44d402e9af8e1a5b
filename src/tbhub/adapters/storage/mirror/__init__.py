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
  files, and readers of the mirror (``MirroredLogStore``) read each file only up to its recorded size.
  A sync killed at any moment is continued by the next, not redone: a temporary name is the same for
  the same key, and a copy (or part) the manifest does not describe is continued from its length
  once its last ``APPEND_CHECK_BYTES`` match the object (else fetched whole). One sync at a time per
  folder (a thread lock and ``flock``, so two processes sharing a state directory take turns).
- Requests are latency-bound: every ranged GET of a sync (big files in ``PART_BYTES`` parts) shares
  one pool of ``requests`` in flight, and the first sync (or a root of more than a listing page)
  lists its top-level prefixes in parallel.
- A listing failure raises ``LogRootError`` and changes nothing; a failure on one file is reported in
  ``SyncStats.errors`` and that file is retried by the next sync.

Modules: ``manifest`` (the mirror's own files: manifest, folder lock, temporary names), ``listing``
(the remote root's event files and what each needs), ``transfer`` (fetching the ranges objects need,
many at once), ``sync`` (``Mirror``, one sync of one folder), ``keeper`` (``MirrorKeeper``, every
endpoint's mirror on its schedule, and the status the hub shows) and ``store`` (``MirroredLogStore``:
the scanner and the scalar reader read a mirrored root's event files from the mirror).
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
