"""DTRN training-side reference (PyTorch): the float oracle for dtrn-edge."""
__version__ = "0.1.0"
