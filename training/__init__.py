"""Training side of stylecast (PyTorch): generator, discriminator, losses, loop and ONNX export.

Importing this package imports torch; the daemon (`streamer`) and the inference backends
(`engines`) never import it.
"""
