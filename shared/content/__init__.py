"""Storage protocols the engine walks over (fetch, exists, push, mount, resolve, tag)."""
