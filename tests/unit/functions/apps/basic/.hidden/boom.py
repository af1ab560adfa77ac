raise RuntimeError("hidden directories must not be imported")
