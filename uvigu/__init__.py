"""Uni-ViGU: one diffusion transformer that generates video from text and describes video in text."""

__version__ = "0.1.0"
