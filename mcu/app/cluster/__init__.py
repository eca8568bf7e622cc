"""Several processes behind one address: a front process and N worker processes.

With ``workers`` > 1 the ``mcu`` command runs :mod:`mcu.app.cluster.front` on the public port and
starts N workers (:mod:`mcu.app.cluster.supervisor`). Worker ``i`` serves the whole application on
the Unix socket ``<data_dir>/run/worker-<i>.sock`` (:mod:`mcu.app.cluster.worker`); the front
routes each room to its home worker (:mod:`mcu.app.cluster.directory`) and workers talk to each
other over the same sockets (:mod:`mcu.app.cluster.peers`). What the processes agree on lives in
:mod:`mcu.contracts.cluster`.
"""
