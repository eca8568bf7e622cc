"""The courseware and recordings library's web product: staff API, uploads, Range playback and
share links. It sits beside the signalling endpoints; the catalogue stays in the recorder."""
