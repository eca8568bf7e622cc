"""The composition root: configuration, the server application, the command line and the
cluster of processes. Only this package imports every layer."""
