"""``python -m mcu``: the same program as the ``mcu`` command (:mod:`mcu.app.main`)."""

from mcu.app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
