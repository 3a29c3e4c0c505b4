"""Small importable applications that real worker processes load in tests (``--app``)."""
