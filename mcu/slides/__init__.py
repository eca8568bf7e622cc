"""Documents shown as slides: validated and rendered in sandboxed child processes, sent as video."""
