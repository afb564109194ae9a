"""The shipped stream builders, one module each (see `lifelong.streams.registry`)."""
