"""Ownership of one C object: freed exactly once, on close(), on leaving a with-block or when
garbage-collected, and always after the objects that depend on it."""

import weakref


class Handle:
    """Base for the Python classes that wrap an opaque C handle (stored as an int address).

    ``_free`` is the C function releasing the handle; a borrowed handle (owned=False) is never
    freed, only forgotten. ``owner`` is the Handle this one needs alive (a context needs its
    model): closing the owner closes this first, so a C object never outlives what it points into.
    A closed handle is NULL, so calls on it fail with REASON_ERR_INVALID_ARG rather than crash."""

    _free = None

    def __init__(self, ptr, owner=None, owned=True):
        if ptr is not None and (not isinstance(ptr, int) or isinstance(ptr, bool)):
            # a path or any other object here would be freed as if it were a C pointer
            raise TypeError(f"{type(self).__name__}: expected a C handle address, got "
                            f"{type(ptr).__name__}")
        self._raw = ptr or None
        self._owner = owner
        self._owned = owned
        self._dependents = weakref.WeakSet()
        if owner is not None:
            owner._dependents.add(self)

    @property
    def _ptr(self):
        return self._raw

    @property
    def closed(self):
        return self._raw is None

    def close(self):
        """Releases the C object (and first every object that depends on it). Idempotent."""
        for dependent in list(self._dependents):
            dependent.close()
        raw, self._raw = self._raw, None
        if raw is not None and self._owned:
            type(self)._free(raw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass
