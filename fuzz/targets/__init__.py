"""The fuzz targets, one module per parser family; :mod:`fuzz.registry` lists them by name."""
