"""The studio's Gradio front end: layout and handlers over ``uvigu.studio.Studio``."""

from ui.layout import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]
