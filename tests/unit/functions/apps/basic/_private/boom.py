raise RuntimeError("underscore directories must not be scanned")
