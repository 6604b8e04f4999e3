"""Interfaces: the command line and the Gradio app, thin consumers of ``Recommender.stream``."""
