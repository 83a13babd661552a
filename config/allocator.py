"""Memory allocator defaults for every altcredit process, set before Polars loads.

Why: Polars allocates through its own jemalloc and configures it to hand freed pages
back to the kernel within half a second (``dirty_decay_ms:500``, set in
``polars/__init__.py``; it appends ``_RJEM_MALLOC_CONF``, so ours wins). A feature build
frees and reallocates gigabytes piece after piece, so every page came back fresh and
was faulted and zeroed again: on this project's virtual machines a quarter of a
build's CPU time. Keeping freed pages for 30 s halves the page faults and takes 1 to
3 s of CPU off a 20-million-event build (`benchmarks/features.py`); memory still goes
back to the kernel half a minute after a build, so a long-running web worker stays
lean. One arena (``narenas:1``) instead of jemalloc's four per core: a page freed by
one of Polars' threads is kept in that thread's arena and reused only there, so with
many arenas a build kept faulting in fresh pages while others sat idle; with one, a
build faults a fifth fewer pages, peaks 0.4 GiB lower and spends 5–10% less CPU (small
allocations still go through each thread's cache, without the arena's lock). jemalloc
reads the variable once, when Polars is first imported: every package's ``__init__``
imports this module first, and an operator's own ``_RJEM_MALLOC_CONF`` wins.
"""

from __future__ import annotations

import os

JEMALLOC_CONF = "dirty_decay_ms:30000,muzzy_decay_ms:30000,narenas:1"

os.environ.setdefault("_RJEM_MALLOC_CONF", JEMALLOC_CONF)
