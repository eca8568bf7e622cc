"""MCU mixing: one composite picture and N-1 sound for receivers that cannot take every stream.

``layout`` places tiles (pure geometry), ``compositor`` draws them into a yuv420p canvas, ``audio``
mixes and limits 20 ms of sound per receiver; ``inputs`` and ``session`` drive them live.
"""
